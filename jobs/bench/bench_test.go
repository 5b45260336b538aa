package bench

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
)

func TestTinyBench(t *testing.T) {
	rep, err := Run(context.Background(), Options{Events: 20000, Users: 800, Items: 500, Days: 20, Dir: t.TempDir(),
		PeakGFLOPs: 157, Threads: 2, Batch: 512, Repeats: 3, Python: "/nonexistent/python3"}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Stages) != 7 || rep.SeqPositions <= 0 || rep.TorchSeqPositions != 0 || rep.GoSamples <= 0 || rep.PeakRSSMiB <= 0 || rep.TorchSamples != 0 || !strings.Contains(rep.TorchNote, "not run") {
		t.Fatalf("%+v", rep)
	}
	for _, s := range rep.Stages {
		if s.Throughput <= 0 || s.Ratio <= 0 || len(s.Runs) != 3 || !slices.Contains(s.Runs, s.Seconds) ||
			s.PeakRSSMiB <= 0 || s.PeakRSSMiB > rep.PeakRSSMiB {
			t.Fatalf("stage %+v (process peak %v MiB)", s, rep.PeakRSSMiB)
		}
	}
	md := rep.Markdown()
	for _, want := range []string{"bare page scan", "bare Arrow record scan", "ingest (page decoder", "ingest (Arrow records", "train", "score", "PyTorch side-by-side not run"} {
		if !strings.Contains(md, want) {
			t.Fatalf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestTinyRetrievalBench(t *testing.T) {
	r, err := RunRetrieval(context.Background(), RetrievalOptions{Events: 30000, Users: 1500, Items: 3000, Days: 20, Epochs: 1,
		Sample: 600, Depth: 50, Target: 0.9, Threads: 2, Dir: t.TempDir()}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ix := r.Index
	if ix.NList < 16 || ix.NProbe < 1 || ix.NProbe > ix.NList || ix.TuneRecall < 0.9 || ix.Recall <= 0 || ix.CheckUsers == 0 ||
		r.ExactUsersPerSec <= 0 || r.IndexUsersPerSec <= 0 || r.ProjectedIndexSecs <= 0 {
		t.Fatalf("%+v", r)
	}
	if md := r.Markdown(); !strings.Contains(md, "Retrieval index (IVF)") || !strings.Contains(md, "speed-up") {
		t.Fatalf("markdown:\n%s", md)
	}
}
