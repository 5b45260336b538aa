// Package bench measures Shelf's stages against the machine's limits and
// writes the `make bench` report (Markdown + JSON): ingest against a bare
// Arrow column scan of the same files, training and scoring against the
// float32 peak FLOP/s, and training against PyTorch on the same model.
package bench

import (
	"bufio"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/file"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"
	"gocloud.dev/blob/fileblob"

	"github.com/shelfml/shelf/io/events"
	"github.com/shelfml/shelf/io/synth"
	"github.com/shelfml/shelf/model"
	"github.com/shelfml/shelf/model/nn"
)

//go:embed torch_ranking.py
var torchScript []byte

// Options size the benchmark.
type Options struct {
	Events     int64
	Users      int
	Items      int
	Days       int
	Dir        string  // scratch directory for the generated data
	PeakGFLOPs float64 // float32 peak of the cores used (Zen 3 AVX2+FMA: 78 per core)
	Threads    int
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
	Ratio      float64 `json:"ratio"`
	RatioTo    string  `json:"ratio_to"`
}

// Report is the benchmark's result.
type Report struct {
	CPU          string  `json:"cpu"`
	Cores        int     `json:"cores"`
	Options      Options `json:"options"`
	Stages       []Stage `json:"stages"`
	PeakRSSMiB   float64 `json:"peak_rss_mib"`
	TorchSamples float64 `json:"torch_samples_per_second,omitempty"`
	TorchNote    string  `json:"torch_note,omitempty"`
	GoSamples    float64 `json:"go_samples_per_second"`
	GoVsTorch    float64 `json:"go_vs_torch,omitempty"`
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func measure(fn func() error) (wall, cpu float64, err error) {
	t0, c0 := time.Now(), cpuSeconds()
	err = fn()
	return time.Since(t0).Seconds(), cpuSeconds() - c0, err
}

// trainFLOPs is the float32 work of one training sample of the reference
// model (dim 32, MLP 96→64→64→1): forward 2·(96·64+64·64+64), backward ≈ 2× forward.
const trainFLOPs = 3 * 2 * (96*64 + 64*64 + 64)

// Run generates data, measures every stage and returns the report.
func Run(ctx context.Context, o Options, log *slog.Logger) (*Report, error) {
	rep := &Report{CPU: cpuModel(), Cores: runtime.NumCPU(), Options: o}
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

	// Ingest vs a bare scan of the same columns.
	var rows int64
	wall, cpu, err := measure(func() error {
		var err error
		rows, err = bareScan(data, []string{"user_id", "item_id", "event_type", "ts"})
		return err
	})
	if err != nil {
		return nil, err
	}
	scan := float64(rows) / wall
	rep.Stages = append(rep.Stages, Stage{Name: "bare column scan", Seconds: wall, CPUSeconds: cpu, Throughput: scan, Unit: "events/s", Ratio: 1, RatioTo: "itself"})
	var in *model.Interactions
	wall, cpu, err = measure(func() error {
		var err error
		in, _, err = events.Read(ctx, b, events.Options{Config: synth.EventsConfig(), Skip: []string{synth.CatalogKey}, Start: end.AddDate(0, 0, -o.Days), End: end.AddDate(0, 0, 1)})
		return err
	})
	if err != nil {
		return nil, err
	}
	rep.Stages = append(rep.Stages, Stage{Name: "ingest (validate, map ids, dedupe)", Seconds: wall, CPUSeconds: cpu,
		Throughput: float64(rows) / wall, Unit: "events/s", Ratio: float64(rows) / wall / scan, RatioTo: "bare column scan"})

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
	wall, cpu, err = measure(func() error {
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
		Throughput: samples, Unit: "samples/s", GFLOPs: g, Ratio: g / o.PeakGFLOPs, RatioTo: "float32 peak"})

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
	wall, cpu, err = measure(func() error {
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
	flops := 2*float64(len(users))*float64(in.Items.Len())*32 + float64(len(users))*200*2*(96*64+64*64+64)
	g = flops / wall / 1e9
	rep.Stages = append(rep.Stages, Stage{Name: "score (retrieval + re-rank 200)", Seconds: wall, CPUSeconds: cpu,
		Throughput: float64(len(users)) / wall, Unit: "users/s", GFLOPs: g, Ratio: g / o.PeakGFLOPs, RatioTo: "float32 peak"})

	rep.TorchSamples, rep.TorchNote = runTorch(ctx, o, in.Users.Len(), in.Items.Len())
	if rep.TorchSamples > 0 {
		rep.GoVsTorch = rep.GoSamples / rep.TorchSamples
	}
	rep.PeakRSSMiB = peakRSSMiB()
	return rep, nil
}

// bareScan reads the named columns of every Parquet file under dir with
// Arrow and does nothing else: the ceiling for ingest.
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

func runTorch(ctx context.Context, o Options, users, items int) (float64, string) {
	f, err := os.CreateTemp(o.Dir, "torch_*.py")
	if err != nil {
		return 0, err.Error()
	}
	f.Write(torchScript)
	f.Close()
	steps := 300
	cmd := exec.CommandContext(ctx, o.Python, f.Name(), fmt.Sprint(users), fmt.Sprint(items), "32", fmt.Sprint(o.Batch), fmt.Sprint(steps), fmt.Sprint(o.Threads))
	out, err := cmd.Output()
	if err != nil {
		return 0, fmt.Sprintf("PyTorch side-by-side not run: %s: %v (apt-get install python3-torch)", o.Python, err)
	}
	var r struct {
		Samples float64 `json:"samples_per_second"`
		Torch   string  `json:"torch"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return 0, fmt.Sprintf("PyTorch output unreadable: %q", out)
	}
	return r.Samples, "torch " + r.Torch
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

func peakRSSMiB() float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			var kb float64
			fmt.Sscanf(strings.TrimSpace(v), "%f", &kb)
			return kb / 1024
		}
	}
	return 0
}

// Markdown renders the report.
func (r *Report) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Shelf benchmark\n\nCPU: %s, %d cores; %d events, %d users, %d items; float32 peak assumed %.0f GFLOP/s.\n\n",
		r.CPU, r.Cores, r.Options.Events, r.Options.Users, r.Options.Items, r.Options.PeakGFLOPs)
	b.WriteString("| stage | wall s | CPU s | throughput | GFLOP/s | ratio | to |\n|---|---|---|---|---|---|---|\n")
	for _, s := range r.Stages {
		gf := ""
		if s.GFLOPs > 0 {
			gf = fmt.Sprintf("%.2f", s.GFLOPs)
		}
		fmt.Fprintf(&b, "| %s | %.2f | %.2f | %.0f %s | %s | %.3f | %s |\n", s.Name, s.Seconds, s.CPUSeconds, s.Throughput, s.Unit, gf, s.Ratio, s.RatioTo)
	}
	fmt.Fprintf(&b, "\nTraining, same model and batch: Go/Gorgonia %.0f samples/s", r.GoSamples)
	if r.TorchSamples > 0 {
		fmt.Fprintf(&b, ", PyTorch %.0f samples/s (%s) — ratio %.2f.\n", r.TorchSamples, r.TorchNote, r.GoVsTorch)
	} else {
		fmt.Fprintf(&b, "; %s.\n", r.TorchNote)
	}
	fmt.Fprintf(&b, "\nPeak RSS of the benchmark process: %.0f MiB.\n", r.PeakRSSMiB)
	return b.String()
}
