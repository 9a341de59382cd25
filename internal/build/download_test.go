package build

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"testing"
)

// recorder keeps the module attribute of every record.
type recorder struct{ modules *[]string }

func (r recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r recorder) Handle(_ context.Context, rec slog.Record) error {
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == "module" {
			*r.modules = append(*r.modules, rec.Message+" "+a.Value.String())
		}
		return true
	})
	return nil
}
func (r recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r recorder) WithGroup(string) slog.Handler      { return r }

// TestDownloadWatcher: the go command's "go: downloading" lines become
// progress records as they arrive, whatever the write boundaries, and all
// of stderr is kept for the error message.
func TestDownloadWatcher(t *testing.T) {
	var got []string
	var buf bytes.Buffer
	w := &downloadWatcher{buf: &buf, log: slog.New(recorder{&got}), ctx: t.Context()}
	stderr := "go: downloading modernc.org/sqlite v1.38.0\ngo: finding module for package x\ngo: downloading modernc.org/libc v1.66.3\n"
	for _, chunk := range []string{stderr[:10], stderr[10:50], stderr[50:]} {
		if _, err := w.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"downloading modernc.org/sqlite v1.38.0", "downloading modernc.org/libc v1.66.3"}
	if !slices.Equal(got, want) {
		t.Errorf("records %q, want %q", got, want)
	}
	if buf.String() != stderr {
		t.Errorf("kept stderr %q, want %q", buf.String(), stderr)
	}
}
