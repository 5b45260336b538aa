// Package blobstest starts real object-store servers on 127.0.0.1 for tests
// in any package: S3 (gofakes3 over HTTP), GCS (fake-gcs-server), Azure Blob
// (an Azurite started by .ci/services/azurite.sh), and a fault-injecting
// reverse proxy in front of S3. Each Start* returns a gocloud.dev bucket URL
// that blob.OpenBucket (or blobs.Open) accepts; the drivers are imported here,
// so a test only needs this package.
//
// The helpers set process environment with t.Setenv (credentials, emulator
// hosts), so tests using them cannot call t.Parallel.
package blobstest
