// Command mkfixture writes the bundled demo sample: the rows of the UCI
// "Online Retail" dump whose InvoiceDate is before 2011-04-01 00:00:00,
// unmodified, with the source's Arrow schema (string InvoiceDate, double
// CustomerID with nulls, cancellations kept).
//
//	go run ./io/events/internal/mkfixture \
//	    -src /work/shared/datasets/online-retail/online_retail.parquet \
//	    -dst testdata/online-retail/online_retail_sample.parquet
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/compute"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/compress"
	"github.com/apache/arrow/go/v17/parquet/file"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"
)

func main() {
	src := flag.String("src", "/work/shared/datasets/online-retail/online_retail.parquet", "source Parquet file")
	dst := flag.String("dst", "testdata/online-retail/online_retail_sample.parquet", "output file")
	before := flag.String("before", "2011-04-01 00:00:00", "keep rows whose InvoiceDate string sorts before this")
	flag.Parse()
	if err := run(context.Background(), *src, *dst, *before); err != nil {
		fmt.Fprintln(os.Stderr, "mkfixture:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, src, dst, before string) error {
	mem := memory.DefaultAllocator
	pf, err := file.OpenParquetFile(src, false)
	if err != nil {
		return fmt.Errorf("open %s: %w", src, err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 64 << 10}, mem)
	if err != nil {
		return fmt.Errorf("read %s: %w", src, err)
	}
	sc, err := fr.Schema()
	if err != nil {
		return fmt.Errorf("schema of %s: %w", src, err)
	}
	dateCol := sc.FieldIndices("InvoiceDate")
	custCol := sc.FieldIndices("CustomerID")
	itemCol := sc.FieldIndices("StockCode")
	if len(dateCol) != 1 || len(custCol) != 1 || len(itemCol) != 1 {
		return fmt.Errorf("%s: want columns InvoiceDate, CustomerID, StockCode; schema is %s", src, sc)
	}

	var kept []arrow.Record
	defer func() {
		for _, r := range kept {
			r.Release()
		}
	}()
	rr, err := fr.GetRecordReader(ctx, nil, nil)
	if err != nil {
		return fmt.Errorf("read %s: %w", src, err)
	}
	defer rr.Release()
	customers, items := map[float64]bool{}, map[string]bool{}
	var rows int64
	for rr.Next() {
		rec := rr.Record()
		dates := rec.Column(dateCol[0]).(*array.String)
		b := array.NewBooleanBuilder(mem)
		for i := 0; i < dates.Len(); i++ {
			b.Append(dates.IsValid(i) && dates.Value(i) < before)
		}
		mask := b.NewArray()
		b.Release()
		out, err := compute.FilterRecordBatch(ctx, rec, mask, compute.DefaultFilterOptions())
		mask.Release()
		if err != nil {
			return fmt.Errorf("filter: %w", err)
		}
		cust := out.Column(custCol[0]).(*array.Float64)
		stock := out.Column(itemCol[0]).(*array.String)
		for i := 0; i < int(out.NumRows()); i++ {
			if cust.IsValid(i) {
				customers[cust.Value(i)] = true
			}
			if stock.IsValid(i) {
				items[stock.Value(i)] = true
			}
		}
		rows += out.NumRows()
		kept = append(kept, out)
	}
	if err := rr.Err(); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read %s: %w", src, err)
	}

	// Same fields and metadata; only pandas' range index length changes.
	md := sc.Metadata()
	keys, vals := md.Keys(), append([]string(nil), md.Values()...)
	for i, k := range keys {
		if k == "pandas" {
			vals[i] = strings.Replace(vals[i], fmt.Sprintf(`"stop": %d`, pf.NumRows()), fmt.Sprintf(`"stop": %d`, rows), 1)
		}
	}
	meta := arrow.NewMetadata(keys, vals)
	outSchema := arrow.NewSchema(sc.Fields(), &meta)

	if err := os.MkdirAll(dirOf(dst), 0o755); err != nil {
		return err
	}
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd),
		parquet.WithDictionaryDefault(true), parquet.WithMaxRowGroupLength(1<<20))
	w, err := pqarrow.NewFileWriter(outSchema, f, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", dst, err)
	}
	for _, rec := range kept {
		r := array.NewRecord(outSchema, rec.Columns(), rec.NumRows())
		err := w.WriteBuffered(r)
		r.Release()
		if err != nil {
			w.Close()
			return fmt.Errorf("write %s: %w", dst, err)
		}
	}
	if err := w.Close(); err != nil { // closes f
		return fmt.Errorf("write %s: %w", dst, err)
	}
	fmt.Printf("%s: rows=%d customers=%d items=%d\n", dst, rows, len(customers), len(items))
	return nil
}

func dirOf(p string) string {
	if i := strings.LastIndex(p, "/"); i >= 0 {
		return p[:i]
	}
	return "."
}
