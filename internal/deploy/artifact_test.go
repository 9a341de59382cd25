package deploy

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/lfsm/lfsm/internal/backend/awstest"
)

func s3Client(t *testing.T) *s3.Client {
	t.Helper()
	cfg := awstest.Config(t, "S3", nil)
	return s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
}

func newBucket(t *testing.T, c *s3.Client) string {
	t.Helper()
	b := strings.ToLower(awstest.Name("lfsm-artifacts"))
	if _, err := c.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestUploadSkipsUnchangedZip: against gofakes3 (AWS_ENDPOINT_URL_S3).
func TestUploadSkipsUnchangedZip(t *testing.T) {
	ctx := t.Context()
	c := s3Client(t)
	bucket := newBucket(t, c)
	zip := filepath.Join(t.TempDir(), "seed.zip")
	if err := os.WriteFile(zip, []byte("PK\x03\x04 not really a zip, but bytes with a digest"), 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := Upload(ctx, c, bucket, "seed", zip)
	if err != nil {
		t.Fatal(err)
	}
	if !a.Uploaded || a.Key != "lfsm/seed/"+a.SHA256+".zip" || len(a.SHA256) != 64 {
		t.Fatalf("first upload: %+v", a)
	}
	got, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(a.Key)})
	if err != nil {
		t.Fatal(err)
	}
	got.Body.Close()
	if aws.ToInt64(got.ContentLength) != a.Size {
		t.Errorf("stored %d bytes, want %d", aws.ToInt64(got.ContentLength), a.Size)
	}

	again, err := Upload(ctx, c, bucket, "seed", zip)
	if err != nil {
		t.Fatal(err)
	}
	if again.Uploaded || again.Key != a.Key {
		t.Errorf("second upload of the same zip: %+v, want skipped", again)
	}

	if err := os.WriteFile(zip, []byte("PK\x03\x04 new code"), 0o644); err != nil {
		t.Fatal(err)
	}
	changed, err := Upload(ctx, c, bucket, "seed", zip)
	if err != nil {
		t.Fatal(err)
	}
	if !changed.Uploaded || changed.Key == a.Key {
		t.Errorf("new code: %+v, want a new key uploaded", changed)
	}

	if _, err := Upload(ctx, c, bucket, "seed", filepath.Join(t.TempDir(), "missing.zip")); err == nil || !strings.Contains(err.Error(), "lfsm build --target aws") {
		t.Errorf("missing zip: %v", err)
	}
}

// TestArtifactBucketStack: with no bucket named, lfsm creates its artifact
// stack once (cfnfake, whose bucket the test creates on gofakes3 as
// CloudFormation would), and reuses it afterwards.
func TestArtifactBucketStack(t *testing.T) {
	ctx := t.Context()
	c := s3Client(t)
	fake, client := fakeCFN(t)
	fake.OnCreate = func(typ, id string) {
		if typ == "AWS::S3::Bucket" {
			if _, err := c.CreateBucket(context.WithoutCancel(ctx), &s3.CreateBucketInput{Bucket: aws.String(id)}); err != nil {
				t.Errorf("create bucket %s: %v", id, err)
			}
		}
	}
	var events []Event
	d := deployer(client, &events)
	b, err := d.ArtifactBucket(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if fake.StackStatus(ArtifactStack) != "CREATE_COMPLETE" {
		t.Fatalf("artifact stack %s", fake.StackStatus(ArtifactStack))
	}
	assertValid(t, ArtifactTemplate())
	zip := filepath.Join(t.TempDir(), "seed.zip")
	if err := os.WriteFile(zip, []byte("zip bytes "+b), 0o644); err != nil {
		t.Fatal(err)
	}
	if a, err := Upload(ctx, c, b, "seed", zip); err != nil || !a.Uploaded {
		t.Fatalf("upload to the artifact stack's bucket: %+v %v", a, err)
	}
	n := len(fake.Calls)
	b2, err := d.ArtifactBucket(ctx)
	if err != nil || b2 != b {
		t.Fatalf("second lookup: %q %v, want %q", b2, err, b)
	}
	for _, call := range fake.Calls[n:] {
		if call.Action != "DescribeStacks" {
			t.Errorf("second lookup made %s", call.Action)
		}
	}
}
