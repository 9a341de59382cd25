package build

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// LambdaTags are the build tags of the Lambda artifact: aws-lambda-go's
// lambda.norpc (no RPC mode, which the provided.al2023 runtime never uses),
// which also leaves fsm/host's local commands, and so SQLite, out.
const LambdaTags = "lambda.norpc"

// zipTime is the modification time of every zip entry, so that the same
// binary gives the same zip (zip's DOS dates begin in 1980).
var zipTime = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)

// Zip describes a Lambda deployment package.
type Zip struct {
	// Path is the absolute path of the zip file.
	Path string `json:"path"`
	// SHA256 is the hex SHA-256 of the zip file's bytes.
	SHA256 string `json:"sha256"`
	// Size is the zip file's size in bytes.
	Size int64 `json:"size"`
}

// WriteZip writes the Lambda deployment package of binary to zipPath: one
// entry, bootstrap, at the root, mode 0755, deflated, with a fixed time, so
// the same binary always gives the same bytes. The file is replaced only
// when its bytes change.
func WriteZip(binary, zipPath string) (Zip, error) {
	f, err := os.Open(binary)
	if err != nil {
		return Zip{}, fmt.Errorf("zip %s: %w", binary, err)
	}
	defer f.Close()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	hdr := &zip.FileHeader{Name: "bootstrap", Method: zip.Deflate, Modified: zipTime}
	hdr.SetMode(0o755)
	w, err := zw.CreateHeader(hdr)
	if err != nil {
		return Zip{}, fmt.Errorf("zip %s: %w", binary, err)
	}
	if _, err := io.Copy(w, f); err != nil {
		return Zip{}, fmt.Errorf("zip %s: %w", binary, err)
	}
	if err := zw.Close(); err != nil {
		return Zip{}, fmt.Errorf("zip %s: %w", binary, err)
	}
	if err := os.MkdirAll(filepath.Dir(zipPath), 0o755); err != nil {
		return Zip{}, fmt.Errorf("write %s: %w", zipPath, err)
	}
	if err := writeIfChanged(zipPath, buf.Bytes()); err != nil {
		return Zip{}, fmt.Errorf("write %s: %w", zipPath, err)
	}
	sum := sha256.Sum256(buf.Bytes())
	return Zip{Path: zipPath, SHA256: hex.EncodeToString(sum[:]), Size: int64(buf.Len())}, nil
}
