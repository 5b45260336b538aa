// Package jobs owns Shelf's pipeline stages — ingest → split → train →
// evaluate → gate → score → publish — for one as-of date, plus the run key,
// version id, progress logging and the error classes that become exit codes.
package jobs
