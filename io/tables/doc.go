// Package tables owns everything Shelf publishes: versioned model artifacts
// (files, then manifest.json last, then the LATEST pointer), the Parquet
// output tables written with parquet-go (recommendations, purchase
// predictions, rejected rows) and their _SUCCESS markers. Readers trust a
// model version only when its manifest exists and every file matches the
// manifest's sha256 and size, and a table partition only when _SUCCESS exists.
package tables
