// Package blobs owns Shelf's access to object storage: opening buckets by
// gocloud.dev URL (file://, mem://, s3://, gs://, azblob://), redacting those
// URLs for logs, an io.ReaderAt over range reads for Parquet/Arrow readers,
// retries with jittered exponential backoff for transient storage errors,
// whole-object reads and writes that never return silently short data,
// conditional creates, the run lock, and the small pieces of the publish
// protocol ("write every file, then the marker last, then move LATEST").
//
// Blob drivers are not imported here: the binary (jobs/shelf) and tests import
// the ones they need (gocloud.dev/blob/s3blob, gcsblob, azureblob, fileblob,
// memblob), so that this package stays cheap to depend on.
//
// Conditional creates (WriteIfNotExists, and so AcquireLock) rely on the store
// honouring gocloud's WriterOptions.IfNotExist. The conformance tests verify
// that for fileblob, memblob, s3blob (gofakes3, S3 If-None-Match: *), gcsblob
// (fake-gcs-server, ifGenerationMatch=0) and azureblob (Azurite,
// If-None-Match: *).
package blobs
