// Package events owns the ingest stage: it lists the Parquet behaviour dumps
// in a bucket, streams their record batches through Arrow with column
// projection, validates every row, maps external ids to dense indices and
// returns the deduplicated *model.Interactions with an exact row accounting.
//
// Every row read lands in exactly one bucket of the Accounting, decided in
// this order (the first that applies wins):
//
//  1. ts: null_ts, bad_ts, ts_before_1970, future_ts (rejected)
//  2. outside [Start, End): OutsideWindow (skipped, not a rejection)
//  3. config filters, in config order: filtered_<name> (rejected, but not
//     counted towards the reject ratio)
//  4. user, item: null_user, bad_user_id, null_item, bad_item_id, id_too_long
//  5. event_type: unknown_event_type (unless unknown_event_type=default)
//  6. identical (user, item, ts, type) seen before in file order: Duplicate
//  7. otherwise Used.
//
// Filters run before the id checks so that a filter such as
// `CustomerID not_null` turns guest checkouts into filtered rows rather than
// null_user rejections.
//
// Errors: storage failures are returned wrapped (retryable); a file that is
// not valid Parquet, lacks a mapped column or has a column of an unsupported
// type yields a *DataError (permanent). Read never panics on any input.
package events
