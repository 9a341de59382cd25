package deploy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// S3 is the part of the S3 API the artifact upload uses; *s3.Client
// implements it.
type S3 interface {
	HeadObject(context.Context, *s3.HeadObjectInput, ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	PutObject(context.Context, *s3.PutObjectInput, ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

// Artifact is the function's zip as uploaded.
type Artifact struct {
	Bucket string `json:"bucket"`
	Key    string `json:"key"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	// Uploaded is false when an object with the same SHA-256 was already
	// there and the upload was skipped.
	Uploaded bool `json:"uploaded"`
}

// ArtifactKey is where a zip with digest sum goes: named by its content, so
// that new code is a new key (CloudFormation updates the function only when
// the key changes) and the same code is never uploaded twice.
func ArtifactKey(project, sum string) string { return "lfsm/" + project + "/" + sum + ".zip" }

// Upload puts the zip at path into bucket under ArtifactKey, unless an
// object with that key is already there.
func Upload(ctx context.Context, client S3, bucket, project, path string) (Artifact, error) {
	f, err := os.Open(path)
	if err != nil {
		return Artifact{}, fmt.Errorf("read the function's zip: %w (lfsm build --target aws writes it)", err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return Artifact{}, fmt.Errorf("read %s: %w", path, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	a := Artifact{Bucket: bucket, Key: ArtifactKey(project, sum), SHA256: sum, Size: n}
	_, err = client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(a.Key)})
	if err == nil {
		return a, nil
	}
	if !isMissingObject(err) {
		return a, fmt.Errorf("look for s3://%s/%s: %w", bucket, a.Key, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return a, fmt.Errorf("read %s: %w", path, err)
	}
	_, err = client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(a.Key), Body: f,
		ContentLength: aws.Int64(n), ContentType: aws.String("application/zip"),
		Metadata: map[string]string{"sha256": sum},
	})
	if err != nil {
		return a, fmt.Errorf("upload %s to s3://%s/%s: %w", path, bucket, a.Key, err)
	}
	a.Uploaded = true
	return a, nil
}

func isMissingObject(err error) bool {
	var nf *s3types.NotFound
	var nk *s3types.NoSuchKey
	if errors.As(err, &nf) || errors.As(err, &nk) {
		return true
	}
	var ae smithy.APIError
	return errors.As(err, &ae) && (ae.ErrorCode() == "NotFound" || ae.ErrorCode() == "NoSuchKey" || ae.ErrorCode() == "404")
}

// ArtifactStack is the stack lfsm creates once per account and region to
// hold function zips when lfsm.yaml names no bucket (as SAM does).
const ArtifactStack = "lfsm-artifacts"

// OutArtifactBucket is the artifact stack's output naming its bucket.
const OutArtifactBucket = "BucketName"

// ArtifactTemplate is the artifact stack: one private, encrypted bucket
// whose old zips expire after 90 days (a deployed function keeps its code:
// Lambda copies it at deploy time).
func ArtifactTemplate() *Template {
	return &Template{
		AWSTemplateFormatVersion: "2010-09-09",
		Description:              "lfsm: the bucket lfsm deploy uploads function zips to",
		Parameters:               map[string]Parameter{},
		Resources: map[string]*Resource{
			"Bucket": {
				Type:           "AWS::S3::Bucket",
				DeletionPolicy: "Retain", UpdateReplacePolicy: "Retain",
				Properties: map[string]any{
					"BucketEncryption": map[string]any{"ServerSideEncryptionConfiguration": []any{
						map[string]any{"ServerSideEncryptionByDefault": map[string]any{"SSEAlgorithm": "AES256"}},
					}},
					"PublicAccessBlockConfiguration": map[string]any{
						"BlockPublicAcls": true, "BlockPublicPolicy": true, "IgnorePublicAcls": true, "RestrictPublicBuckets": true,
					},
					"OwnershipControls": map[string]any{"Rules": []any{map[string]any{"ObjectOwnership": "BucketOwnerEnforced"}}},
					"LifecycleConfiguration": map[string]any{"Rules": []any{map[string]any{
						"Id": "expire-old-zips", "Status": "Enabled", "ExpirationInDays": 90,
					}}},
					"Tags": []any{map[string]any{"Key": "lfsm:stack", "Value": Ref("AWS::StackName")}},
				},
			},
		},
		Outputs: map[string]Output{OutArtifactBucket: {Description: "The bucket function zips are uploaded to", Value: Ref("Bucket")}},
	}
}

// ArtifactBucket returns the artifact stack's bucket, creating the stack
// first when it does not exist.
func (d *Deployer) ArtifactBucket(ctx context.Context) (string, error) {
	outs, err := d.Outputs(ctx, ArtifactStack)
	if err != nil {
		return "", err
	}
	if b := outs[OutArtifactBucket]; b != "" {
		return b, nil
	}
	body, err := ArtifactTemplate().JSON()
	if err != nil {
		return "", err
	}
	p, err := d.Plan(ctx, PlanInput{Stack: ArtifactStack, Template: body, Tags: map[string]string{"lfsm:stack": ArtifactStack}})
	if err != nil {
		return "", fmt.Errorf("create the artifact bucket's stack %s: %w", ArtifactStack, err)
	}
	if p.HasChanges() {
		if err := d.Execute(ctx, p); err != nil {
			return "", fmt.Errorf("create the artifact bucket's stack %s: %w", ArtifactStack, err)
		}
	}
	outs, err = d.Outputs(ctx, ArtifactStack)
	if err != nil {
		return "", err
	}
	if outs[OutArtifactBucket] == "" {
		return "", fmt.Errorf("stack %s has no %s output: delete it and deploy again", ArtifactStack, OutArtifactBucket)
	}
	return outs[OutArtifactBucket], nil
}
