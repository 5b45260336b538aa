// Package bench measures Shelf's stages against the machine's limits and
// writes the `make bench` report (Markdown + JSON): ingest against bare
// column scans of the same files (parquet-go pages, Arrow records), training and scoring against the
// float32 peak FLOP/s, and training against PyTorch on the same model.
package bench

import (
	"bufio"
	"cmp"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/file"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"
	pq "github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding"
	"gocloud.dev/blob/fileblob"

	"github.com/shelfml/shelf/internal/f32"
	"github.com/shelfml/shelf/internal/sysres"
	"github.com/shelfml/shelf/io/events"
	"github.com/shelfml/shelf/io/synth"
	"github.com/shelfml/shelf/model"
	"github.com/shelfml/shelf/model/nn"
)

//go:embed torch_ranking.py
var torchScript []byte

//go:embed torch_sequence.py
var torchSeqScript []byte

// Options size the benchmark.
type Options struct {
	Events     int64
	Users      int
	Items      int
	Days       int
	Dir        string  // scratch directory for the generated data
	PeakGFLOPs float64 // float32 peak of the cores used as stated (the Zen 3 figure: 78 per core)
	Threads    int
	Repeats    int // measurements per stage; the report gives their median (≥ 1)
	Batch      int
	Python     string // interpreter with torch (Debian: /usr/bin/python3 + python3-torch)
}

// Stage is one measured stage.
type Stage struct {
	Name       string  `json:"name"`
	Seconds    float64 `json:"seconds"`
	CPUSeconds float64 `json:"cpu_seconds"`
	Throughput float64 `json:"throughput"`
	Unit       string  `json:"unit"`
	GFLOPs     float64 `json:"gflop_per_second,omitempty"`
	// PerCPUSecond is the throughput per CPU-second (ingest and scans).
	PerCPUSecond float64 `json:"per_cpu_second,omitempty"`
	Ratio        float64 `json:"ratio"`
	RatioTo      string  `json:"ratio_to"`
	// RatioStated is GFLOPs over Options.PeakGFLOPs (compute stages only).
	RatioStated float64   `json:"ratio_to_stated_peak,omitempty"`
	Runs        []float64 `json:"runs_seconds"` // wall seconds of every repeat
	// PeakRSSMiB is the process's peak resident set over the stage's runs
	// (everything resident then: the generated data, earlier stages' results).
	PeakRSSMiB float64 `json:"peak_rss_mib,omitempty"`
}

// Report is the benchmark's result.
type Report struct {
	CPU   string `json:"cpu"`
	Cores int    `json:"cores"`
	// MeasuredPeakGFLOPs is the float32 FMA throughput of Threads cores
	// busy at once (internal/f32.PeakGFLOPs): the compute ratios' denominator.
	MeasuredPeakGFLOPs float64 `json:"measured_peak_gflops"`
	// MeasuredAVX2GFLOPs is the same with 8-wide (AVX2) FMAs only.
	MeasuredAVX2GFLOPs float64 `json:"measured_avx2_peak_gflops"`
	AVX512             bool    `json:"avx512_kernels"`
	Options            Options `json:"options"`
	Stages             []Stage `json:"stages"`
	PeakRSSMiB         float64 `json:"peak_rss_mib"`
	TorchSamples       float64 `json:"torch_samples_per_second,omitempty"`
	TorchNote          string  `json:"torch_note,omitempty"`
	GoSamples          float64 `json:"go_samples_per_second"`
	GoVsTorch          float64 `json:"go_vs_torch,omitempty"`
	// The sequence encoder's training, positions per second, here and in
	// PyTorch (same architecture, batch and loss).
	SeqPositions      float64 `json:"seq_positions_per_second"`
	TorchSeqPositions float64 `json:"torch_seq_positions_per_second,omitempty"`
	TorchSeqNote      string  `json:"torch_seq_note,omitempty"`
	SeqVsTorch        float64 `json:"seq_vs_torch,omitempty"`
}

// The sequence stage's encoder: SeqTrainer's default shape in a run
// (configs: sequence.*), on full-length sequences of random items.
const (
	seqDim, seqLen, seqBlocks, seqHeads, seqBatch = 32, 50, 2, 2, 128
	seqSequences                                  = 20 * seqBatch
)

// seqFLOPs is the float32 work of one position (graph row) of a training
// step, counted dense: per block the Q, K, V and two feed-forward D×D
// products (5·2D²) and attention scores and sums over all L slots (2·2LD),
// the loss's two dot products (2·2D); backward ≈ 2× forward. Layer norms,
// softmax and the embedding sums are not counted.
const seqFLOPs = 3 * (seqBlocks*(5*2*seqDim*seqDim+2*2*seqLen*seqDim) + 2*2*seqDim)

func cpuSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// measure times fn from a collected heap, as testing.B does: garbage left by
// earlier runs is not charged to this one (it was most of the spread of the
// 0.15-second ingest runs).
func measure(fn func() error) (wall, cpu float64, err error) {
	runtime.GC()
	t0, c0 := time.Now(), cpuSeconds()
	err = fn()
	return time.Since(t0).Seconds(), cpuSeconds() - c0, err
}

// median runs fn n times and returns the median run's wall and CPU seconds,
// the process's peak RSS over the n runs (see resetPeakRSS) and every run's
// wall seconds.
func median(n int, fn func() error) (wall, cpu, peakMiB float64, runs []float64, err error) {
	type run struct{ wall, cpu float64 }
	var rs []run
	resetPeakRSS()
	for range max(n, 1) {
		w, c, err := measure(fn)
		if err != nil {
			return 0, 0, 0, nil, err
		}
		rs = append(rs, run{w, c})
		runs = append(runs, w)
	}
	slices.SortFunc(rs, func(a, b run) int { return cmp.Compare(a.wall, b.wall) })
	m := rs[len(rs)/2]
	return m.wall, m.cpu, peakRSSMiB(), runs, nil
}

// resetPeakRSS sets the kernel's peak-RSS mark (VmHWM) to the current RSS
// (Linux: "5" to /proc/self/clear_refs), so that the next reading is the peak
// of what ran in between. Elsewhere it does nothing and readings are peaks
// since the start.
func resetPeakRSS() {
	processPeakMiB = max(processPeakMiB, peakRSSMiB())
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// processPeakMiB is the process's peak RSS up to the last resetPeakRSS.
var processPeakMiB float64

// trainFLOPs is the float32 work of one training sample of the reference
// model (dim 32, MLP 96→64→64→1): forward 2·(96·64+64·64+64), backward ≈ 2× forward.
const trainFLOPs = 3 * 2 * (96*64 + 64*64 + 64)

// rerankFLOPs is the work of re-ranking one candidate as scoring does it:
// layer 0 on the item's 64 inputs (the user's 32 are folded in once per
// user), 64→64, 64→1 and the dot product.
const rerankFLOPs = 2 * (64*64 + 64*64 + 64 + 32)

// Run generates data, measures every stage and returns the report.
func Run(ctx context.Context, o Options, log *slog.Logger) (*Report, error) {
	rep := &Report{CPU: cpuModel(), Cores: runtime.NumCPU(), Options: o}
	rep.MeasuredPeakGFLOPs = f32.PeakGFLOPs(o.Threads, 2*time.Second, false)
	rep.MeasuredAVX2GFLOPs = f32.PeakGFLOPs(o.Threads, time.Second, true)
	rep.AVX512 = f32.HasAVX512
	peak, peakName := rep.MeasuredPeakGFLOPs, "measured float32 peak"
	if peak <= 0 {
		peak, peakName = o.PeakGFLOPs, "stated float32 peak"
	}
	data := filepath.Join(o.Dir, "events")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return nil, err
	}
	b, err := fileblob.OpenBucket(data, nil)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	end := time.Date(2024, 3, 31, 0, 0, 0, 0, time.UTC)
	so := synth.Options{Events: o.Events, Users: o.Users, Items: o.Items, Days: o.Days, End: end, Seed: 1}
	log.Info("bench: generating", "events", o.Events)
	if _, err := synth.Generate(ctx, b, so); err != nil {
		return nil, err
	}

	// Ingest vs bare scans of the same columns: page by page with
	// parquet-go (the page decoder's ceiling) and through Arrow records (the
	// fallback decoder's).
	ec := synth.EventsConfig().Columns
	cols := []string{ec.User, ec.Item, ec.EventType, ec.TS, ec.Quantity, ec.Price} // session_id is only type-checked
	var rows int64
	var in *model.Interactions
	for _, sc := range []struct {
		name    string
		scan    func(string, []string) (int64, error)
		ingest  string
		records bool
	}{
		{"bare page scan (parquet-go, ingest's 6 columns)", barePageScan, "ingest (page decoder: validate, map ids, dedupe)", false},
		{"bare Arrow record scan (same columns)", bareScan, "ingest (Arrow records, the fallback decoder)", true},
	} {
		wall, cpu, rss, runs, err := median(o.Repeats, func() error {
			var err error
			rows, err = sc.scan(data, cols)
			return err
		})
		if err != nil {
			return nil, err
		}
		scan := float64(rows) / wall
		rep.Stages = append(rep.Stages, Stage{Name: sc.name, Seconds: wall, CPUSeconds: cpu, Throughput: scan, Unit: "events/s",
			PerCPUSecond: float64(rows) / cpu, Ratio: 1, RatioTo: "itself", Runs: runs, PeakRSSMiB: rss})
		wall, cpu, rss, runs, err = median(o.Repeats, func() error {
			var err error
			in, _, err = events.Read(ctx, b, events.Options{Config: synth.EventsConfig(), Skip: []string{synth.CatalogKey},
				Start: end.AddDate(0, 0, -o.Days), End: end.AddDate(0, 0, 1), ArrowRecords: sc.records})
			return err
		})
		if err != nil {
			return nil, err
		}
		rep.Stages = append(rep.Stages, Stage{Name: sc.ingest, Seconds: wall, CPUSeconds: cpu, Throughput: float64(rows) / wall, Unit: "events/s",
			PerCPUSecond: float64(rows) / cpu, Ratio: float64(rows) / wall / scan, RatioTo: sc.name[:strings.Index(sc.name, " (")], Runs: runs, PeakRSSMiB: rss})
	}

	// Train one epoch of the reference model.
	seen := map[int64]bool{}
	var pos []nn.Positive
	for _, e := range in.Events {
		k := int64(e.User)<<32 | int64(e.Item)
		if !seen[k] {
			seen[k] = true
			pos = append(pos, nn.Positive{User: e.User, Item: e.Item, Weight: 1})
		}
	}
	opts := nn.RankingOptions{Dim: 32, Hidden: []int{64, 64}, Epochs: 1, BatchSize: o.Batch, Negatives: 4, LearningRate: 0.003,
		Loss: "bce", NegSampling: "popularity", NegAlpha: 0.5, Seed: 1, Workers: o.Threads}
	var m *model.RankingModel
	var hist []nn.EpochStats
	wall, cpu, rss, runs, err := median(o.Repeats, func() error {
		var err error
		m, hist, err = nn.TrainRanking(ctx, nn.RankingData{NUsers: in.Users.Len(), NItems: in.Items.Len(), Positives: pos}, opts, nil, nil)
		return err
	})
	if err != nil {
		return nil, err
	}
	samples := float64(hist[0].Samples) / wall
	rep.GoSamples = samples
	g := samples * trainFLOPs / 1e9
	rep.Stages = append(rep.Stages, Stage{Name: fmt.Sprintf("train (batch %d, %d workers)", o.Batch, o.Threads), Seconds: wall, CPUSeconds: cpu,
		Throughput: samples, Unit: "samples/s", GFLOPs: g, Ratio: g / peak, RatioTo: peakName, RatioStated: g / o.PeakGFLOPs, Runs: runs, PeakRSSMiB: rss})

	// Score: retrieval for all users + MLP re-rank of 200 candidates.
	r, c, v := []int32{}, []int32{}, []float32{}
	for _, p := range pos {
		r, c, v = append(r, p.User), append(c, p.Item), append(v, 1)
	}
	ui := model.NewCSR(in.Users.Len(), in.Items.Len(), r, c, v)
	rec := model.NewModelRecommender(m, ui, 200, nil)
	users := make([]int32, in.Users.Len())
	for i := range users {
		users[i] = int32(i)
	}
	wall, cpu, rss, runs, err = median(o.Repeats, func() error {
		const blk = 256
		out := make([][][]model.Scored, o.Threads)
		done := make(chan struct{}, o.Threads)
		for w := 0; w < o.Threads; w++ {
			out[w] = make([][]model.Scored, blk)
			go func(w int) {
				for lo := w * blk; lo < len(users); lo += o.Threads * blk {
					ub := users[lo:min(lo+blk, len(users))]
					rec.RecommendBlock(ub, 20, nil, out[w][:len(ub)])
				}
				done <- struct{}{}
			}(w)
		}
		for w := 0; w < o.Threads; w++ {
			<-done
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// FLOPs executed: retrieval against every item, the re-rank of 200
	// candidates and, once per user, the user's block of layer 0.
	flops := float64(len(users)) * (2*float64(in.Items.Len())*32 + 200*rerankFLOPs + 2*32*64)
	g = flops / wall / 1e9
	rep.Stages = append(rep.Stages, Stage{Name: "score (retrieval + re-rank 200)", Seconds: wall, CPUSeconds: cpu,
		Throughput: float64(len(users)) / wall, Unit: "users/s", GFLOPs: g, Ratio: g / peak, RatioTo: peakName, RatioStated: g / o.PeakGFLOPs, Runs: runs, PeakRSSMiB: rss})

	// The sequence encoder: one epoch over full-length sequences.
	rng := rand.New(rand.NewPCG(5, 5))
	seqs := make([]nn.Sequence, seqSequences)
	for i := range seqs {
		s := nn.Sequence{Items: make([]int32, seqLen+1), Types: make([]uint8, seqLen+1)}
		for j := range s.Items {
			s.Items[j], s.Types[j] = int32(rng.IntN(in.Items.Len())), uint8(rng.IntN(4))
		}
		seqs[i] = s
	}
	so2 := nn.SeqOptions{Dim: seqDim, MaxLen: seqLen, Heads: seqHeads, Blocks: seqBlocks, Epochs: 1, BatchSize: seqBatch,
		LearningRate: 0.005, Dropout: 0.2, Seed: 1, Workers: o.Threads}
	wall, cpu, rss, runs, err = median(o.Repeats, func() error {
		tr, err := nn.NewSeqTrainer(in.Items.Len(), 4, so2)
		if err != nil {
			return err
		}
		defer tr.Close()
		_, _, err = tr.Train(ctx, seqs)
		return err
	})
	if err != nil {
		return nil, err
	}
	positions := float64(seqSequences*seqLen) / wall
	rep.SeqPositions = positions
	g = positions * seqFLOPs / 1e9
	rep.Stages = append(rep.Stages, Stage{Name: fmt.Sprintf("train sequence encoder (dim %d, %d positions, %d blocks, batch %d)", seqDim, seqLen, seqBlocks, seqBatch),
		Seconds: wall, CPUSeconds: cpu, Throughput: positions, Unit: "positions/s", GFLOPs: g, Ratio: g / peak, RatioTo: peakName,
		RatioStated: g / o.PeakGFLOPs, Runs: runs, PeakRSSMiB: rss})

	rep.TorchSamples, rep.TorchNote = runTorch(ctx, o, in.Users.Len(), in.Items.Len())
	if rep.TorchSamples > 0 {
		rep.GoVsTorch = rep.GoSamples / rep.TorchSamples
	}
	rep.TorchSeqPositions, rep.TorchSeqNote = runTorchSeq(ctx, o, in.Items.Len())
	if rep.TorchSeqPositions > 0 {
		rep.SeqVsTorch = rep.SeqPositions / rep.TorchSeqPositions
	}
	rep.PeakRSSMiB = max(processPeakMiB, peakRSSMiB())
	return rep, nil
}

// barePageScan reads the named columns of every Parquet file under dir page
// by page with parquet-go, touching every value (dictionary indices of
// dictionary-encoded columns) and doing nothing else: the ceiling for the
// page decoder.
func barePageScan(dir string, cols []string) (int64, error) {
	var rows int64
	var sink int64
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() || !strings.HasSuffix(p, ".parquet") || strings.HasSuffix(filepath.ToSlash(p), synth.CatalogKey) {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		pf, err := pq.OpenFile(f, fi.Size(), pq.SkipPageIndex(true), pq.SkipBloomFilters(true), pq.ReadBufferSize(1<<20))
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		var leaves []int
		for _, c := range cols {
			lc, ok := pf.Schema().Lookup(c)
			if !ok {
				return fmt.Errorf("%s: no column %s", p, c)
			}
			leaves = append(leaves, lc.ColumnIndex)
		}
		rows += pf.NumRows()
		for _, rg := range pf.RowGroups() {
			for _, leaf := range leaves {
				pages := rg.ColumnChunks()[leaf].Pages()
				for {
					pg, err := pages.ReadPage()
					if err == io.EOF {
						break
					}
					if err != nil {
						pages.Close()
						return fmt.Errorf("%s: %w", p, err)
					}
					sink += touch(pg)
					pq.Release(pg)
				}
				pages.Close()
			}
		}
		return nil
	})
	if sink == 42 {
		fmt.Fprint(io.Discard, sink)
	}
	return rows, err
}

// touch reads every value of a page.
func touch(pg pq.Page) int64 {
	d := pg.Data()
	var s int64
	switch d.Kind() {
	case encoding.Int32:
		for _, x := range d.Int32() {
			s += int64(x)
		}
	case encoding.Int64:
		for _, x := range d.Int64() {
			s += x
		}
	case encoding.Float:
		for _, x := range d.Float() {
			s += int64(x)
		}
	case encoding.Double:
		for _, x := range d.Double() {
			s += int64(x)
		}
	case encoding.ByteArray:
		v, off := d.ByteArray()
		s += int64(len(v) + len(off))
	}
	return s
}

// bareScan reads the named columns of every Parquet file under dir with
// Arrow's record reader and does nothing else: the ceiling for ingest
// through Arrow records.
func bareScan(dir string, cols []string) (int64, error) {
	var rows int64
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() || !strings.HasSuffix(p, ".parquet") || strings.HasSuffix(filepath.ToSlash(p), synth.CatalogKey) {
			return err
		}
		props := parquet.NewReaderProperties(memory.DefaultAllocator)
		props.BufferedStreamEnabled = true
		pf, err := file.OpenParquetFile(p, false, file.WithReadProps(props))
		if err != nil {
			return err
		}
		defer pf.Close()
		fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 64 << 10}, memory.DefaultAllocator)
		if err != nil {
			return err
		}
		var idx []int
		for _, c := range cols {
			i := pf.MetaData().Schema.ColumnIndexByName(c)
			if i < 0 {
				return fmt.Errorf("%s: no column %s", p, c)
			}
			idx = append(idx, i)
		}
		rr, err := fr.GetRecordReader(context.Background(), idx, nil)
		if err != nil {
			return err
		}
		defer rr.Release()
		for rr.Next() {
			rows += rr.Record().NumRows()
		}
		return nil
	})
	return rows, err
}

// runTorchSeq runs torch_sequence.py: the encoder's training in PyTorch.
func runTorchSeq(ctx context.Context, o Options, items int) (float64, string) {
	return runTorchScript(ctx, o, torchSeqScript, "positions_per_second", fmt.Sprint(items), fmt.Sprint(seqDim), fmt.Sprint(seqLen),
		fmt.Sprint(seqBlocks), fmt.Sprint(seqHeads), fmt.Sprint(seqBatch), "20", fmt.Sprint(o.Threads))
}

func runTorch(ctx context.Context, o Options, users, items int) (float64, string) {
	return runTorchScript(ctx, o, torchScript, "samples_per_second", fmt.Sprint(users), fmt.Sprint(items), "32", fmt.Sprint(o.Batch), "300", fmt.Sprint(o.Threads))
}

// runTorchScript runs an embedded PyTorch script with args and returns the
// throughput its JSON line gives under key, and the torch version (or why
// it did not run).
func runTorchScript(ctx context.Context, o Options, script []byte, key string, args ...string) (float64, string) {
	f, err := os.CreateTemp(o.Dir, "torch_*.py")
	if err != nil {
		return 0, err.Error()
	}
	f.Write(script)
	f.Close()
	out, err := exec.CommandContext(ctx, o.Python, append([]string{f.Name()}, args...)...).Output()
	if err != nil {
		return 0, fmt.Sprintf("PyTorch side-by-side not run: %s: %v (apt-get install python3-torch)", o.Python, err)
	}
	var r map[string]any
	if err := json.Unmarshal(out, &r); err != nil {
		return 0, fmt.Sprintf("PyTorch output unreadable: %q", out)
	}
	v, _ := r[key].(float64)
	t, _ := r["torch"].(string)
	return v, "torch " + t
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if k, v, ok := strings.Cut(s.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func peakRSSMiB() float64 { return sysres.PeakRSSMiB() }

// Markdown renders the report.
func (r *Report) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Shelf benchmark\n\nCPU: %s, %d cores; %d events, %d users, %d items; median of %d runs per stage.\n"+
		"float32 peak: measured %.1f GFLOP/s on %d busy cores (register-only FMA loop, widest vectors; %.1f with AVX2 only), stated %.0f GFLOP/s; kernels: %s.\n\n",
		r.CPU, r.Cores, r.Options.Events, r.Options.Users, r.Options.Items, max(r.Options.Repeats, 1), r.MeasuredPeakGFLOPs, r.Options.Threads,
		r.MeasuredAVX2GFLOPs, r.Options.PeakGFLOPs, map[bool]string{true: "AVX-512", false: "AVX2 + FMA"}[r.AVX512])
	b.WriteString("| stage | wall s | CPU s | peak RSS MiB | throughput | per CPU-second | GFLOP/s | ratio | to | vs stated peak |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, s := range r.Stages {
		gf, st, pc := "", "", ""
		if s.GFLOPs > 0 {
			gf = fmt.Sprintf("%.2f", s.GFLOPs)
		}
		if s.PerCPUSecond > 0 {
			pc = fmt.Sprintf("%.0f", s.PerCPUSecond)
		}
		if s.RatioStated > 0 {
			st = fmt.Sprintf("%.3f", s.RatioStated)
		}
		fmt.Fprintf(&b, "| %s | %.2f | %.2f | %.0f | %.0f %s | %s | %s | %.3f | %s | %s |\n", s.Name, s.Seconds, s.CPUSeconds, s.PeakRSSMiB, s.Throughput, s.Unit, pc, gf, s.Ratio, s.RatioTo, st)
	}
	fmt.Fprintf(&b, "\nTraining, same model and batch: Go/Gorgonia %.0f samples/s", r.GoSamples)
	if r.TorchSamples > 0 {
		fmt.Fprintf(&b, ", PyTorch %.0f samples/s (%s) — ratio %.2f.\n", r.TorchSamples, r.TorchNote, r.GoVsTorch)
	} else {
		fmt.Fprintf(&b, "; %s.\n", r.TorchNote)
	}
	fmt.Fprintf(&b, "\nSequence encoder training, same architecture, batch and loss: Go/Gorgonia %.0f positions/s", r.SeqPositions)
	if r.TorchSeqPositions > 0 {
		fmt.Fprintf(&b, ", PyTorch %.0f positions/s (%s) — ratio %.2f.\n", r.TorchSeqPositions, r.TorchSeqNote, r.SeqVsTorch)
	} else {
		fmt.Fprintf(&b, "; %s.\n", r.TorchSeqNote)
	}
	fmt.Fprintf(&b, "\nPeak RSS of the benchmark process: %.0f MiB.\n", r.PeakRSSMiB)
	return b.String()
}
