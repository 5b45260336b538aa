// Package report renders a model version's report.html: a self-contained
// page (plots embedded as PNG data URIs, no network) with training curves,
// model vs baselines, the score distribution, popularity bias of the
// recommendations and the purchase model's calibration.
package report

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"html/template"
	"image/color"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Epoch is one training epoch.
type Epoch struct {
	Epoch            int
	Loss, Validation float64
}

// Bin is one reliability bin.
type Bin struct {
	MeanPredicted, Observed float64
	Count                   int
}

// Input is everything the page shows.
type Input struct {
	Name, Version, Date string
	GatePassed          bool
	GateReason          string
	Window              string
	Accounting          map[string]int64
	Selection           map[string]float64
	History             map[string][]Epoch            // phase → epochs
	Metrics             map[string]map[string]float64 // recommender → metric → value
	Scores              []float64                     // recommendation scores (a sample)
	RecItemCounts       []float64                     // per item: times recommended in the sample
	TrainItemCounts     []float64                     // per item: training interactions
	Calibration         map[string][]Bin              // purchase model and baselines
}

type figure struct {
	Title, Caption string
	Src            template.URL
}

// Render produces the HTML page.
func Render(in Input) ([]byte, error) {
	var figs []figure
	add := func(title, caption string, mk func() (*plot.Plot, error)) error {
		p, err := mk()
		if err != nil {
			return fmt.Errorf("report: %s: %w", title, err)
		}
		if p == nil {
			return nil
		}
		src, err := toPNG(p)
		if err != nil {
			return fmt.Errorf("report: %s: %w", title, err)
		}
		figs = append(figs, figure{Title: title, Caption: caption, Src: src})
		return nil
	}
	if err := add("Training", "loss (solid) and validation metric (dashed) per epoch and phase", func() (*plot.Plot, error) { return curves(in.History) }); err != nil {
		return nil, err
	}
	if err := add("Model vs baselines", "holdout metrics of every recommender, same run, same evaluator", func() (*plot.Plot, error) { return bars(in.Metrics) }); err != nil {
		return nil, err
	}
	if err := add("Score distribution", "scores of the published recommendations (sample of users)", func() (*plot.Plot, error) { return histogram(in.Scores) }); err != nil {
		return nil, err
	}
	if err := add("Popularity bias", "share of recommendations and of training interactions going to the most popular items", func() (*plot.Plot, error) { return bias(in.RecItemCounts, in.TrainItemCounts) }); err != nil {
		return nil, err
	}
	if err := add("Purchase model calibration", "mean predicted probability vs observed purchase rate per bin; the diagonal is perfect calibration", func() (*plot.Plot, error) { return calibration(in.Calibration) }); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	err := page.Execute(&buf, struct {
		Input
		Figures []figure
		Keys    func(map[string]int64) []string
	}{in, figs, keys})
	return buf.Bytes(), err
}

func keys(m map[string]int64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func toPNG(p *plot.Plot) (template.URL, error) {
	c := vgimg.New(7*vg.Inch, 3.5*vg.Inch)
	p.Draw(draw.New(c))
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: c}).WriteTo(&buf); err != nil {
		return "", err
	}
	return template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes())), nil
}

func curves(h map[string][]Epoch) (*plot.Plot, error) {
	if len(h) == 0 {
		return nil, nil
	}
	p := plot.New()
	p.X.Label.Text, p.Y.Label.Text = "epoch", "loss / validation"
	phases := make([]string, 0, len(h))
	for k := range h {
		phases = append(phases, k)
	}
	sort.Strings(phases)
	for i, ph := range phases {
		var loss, val plotter.XYs
		for _, e := range h[ph] {
			loss = append(loss, plotter.XY{X: float64(e.Epoch), Y: e.Loss})
			if e.Validation != 0 {
				val = append(val, plotter.XY{X: float64(e.Epoch), Y: e.Validation})
			}
		}
		l, err := plotter.NewLine(loss)
		if err != nil {
			return nil, err
		}
		l.Color = plotutil.Color(i)
		p.Add(l)
		p.Legend.Add(ph+" loss", l)
		if len(val) > 0 {
			v, err := plotter.NewLine(val)
			if err != nil {
				return nil, err
			}
			v.Color, v.Dashes = plotutil.Color(i), []vg.Length{vg.Points(4), vg.Points(3)}
			p.Add(v)
			p.Legend.Add(ph+" validation", v)
		}
	}
	p.Legend.Top = true
	return p, nil
}

var barMetrics = []string{"ndcg@10", "recall@10", "hr@10", "ndcg@20", "recall@20", "hr@20"}

func bars(m map[string]map[string]float64) (*plot.Plot, error) {
	if len(m) == 0 {
		return nil, nil
	}
	p := plot.New()
	p.Y.Label.Text = "value"
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	w := vg.Points(60 / float64(len(names)))
	for i, n := range names {
		vals := make(plotter.Values, len(barMetrics))
		for j, k := range barMetrics {
			vals[j] = m[n][k]
		}
		b, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return nil, err
		}
		b.Color = plotutil.Color(i)
		b.LineStyle.Width = 0
		b.Offset = w * vg.Length(i-len(names)/2)
		p.Add(b)
		p.Legend.Add(n, b)
	}
	p.NominalX(barMetrics...)
	p.Legend.Top = true
	return p, nil
}

func histogram(scores []float64) (*plot.Plot, error) {
	if len(scores) == 0 {
		return nil, nil
	}
	p := plot.New()
	p.X.Label.Text, p.Y.Label.Text = "score", "recommendations"
	h, err := plotter.NewHist(plotter.Values(scores), 40)
	if err != nil {
		return nil, err
	}
	h.FillColor = color.RGBA{R: 70, G: 110, B: 200, A: 255}
	p.Add(h)
	return p, nil
}

// topShare is the share of total mass held by the top fraction of items by
// training popularity.
func topShare(counts, pop []float64, frac float64) float64 {
	idx := make([]int, len(pop))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return pop[idx[a]] > pop[idx[b]] })
	n := max(1, int(frac*float64(len(idx))))
	var top, total float64
	for r, i := range idx {
		if r < n {
			top += counts[i]
		}
		total += counts[i]
	}
	if total == 0 {
		return 0
	}
	return top / total
}

func bias(rec, train []float64) (*plot.Plot, error) {
	if len(rec) == 0 || len(rec) != len(train) {
		return nil, nil
	}
	p := plot.New()
	p.Y.Label.Text = "share"
	fracs := []float64{0.01, 0.1, 0.5}
	w := vg.Points(25)
	for i, series := range [][]float64{train, rec} {
		vals := make(plotter.Values, len(fracs))
		for j, f := range fracs {
			vals[j] = topShare(series, train, f)
		}
		b, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return nil, err
		}
		b.Color, b.LineStyle.Width = plotutil.Color(i), 0
		b.Offset = w * vg.Length(2*i-1) / 2
		p.Add(b)
		p.Legend.Add([]string{"training interactions", "recommendations"}[i], b)
	}
	p.NominalX("top 1% items", "top 10% items", "top 50% items")
	p.Legend.Top = true
	return p, nil
}

func calibration(c map[string][]Bin) (*plot.Plot, error) {
	if len(c) == 0 {
		return nil, nil
	}
	p := plot.New()
	p.X.Label.Text, p.Y.Label.Text = "mean predicted probability", "observed rate"
	diag, _ := plotter.NewLine(plotter.XYs{{X: 0, Y: 0}, {X: 1, Y: 1}})
	diag.Color = color.Gray{Y: 160}
	p.Add(diag)
	names := make([]string, 0, len(c))
	for k := range c {
		names = append(names, k)
	}
	sort.Strings(names)
	for i, n := range names {
		var xy plotter.XYs
		for _, b := range c[n] {
			if b.Count > 0 {
				xy = append(xy, plotter.XY{X: b.MeanPredicted, Y: b.Observed})
			}
		}
		if len(xy) == 0 {
			continue
		}
		l, s, err := plotter.NewLinePoints(xy)
		if err != nil {
			return nil, err
		}
		l.Color, s.Color = plotutil.Color(i), plotutil.Color(i)
		p.Add(l, s)
		p.Legend.Add(n, l, s)
	}
	p.Legend.Top, p.Legend.Left = true, true
	return p, nil
}

var page = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Shelf {{.Name}} {{.Version}}</title>
<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}.ok{color:#080}.no{color:#b00}img{max-width:100%}</style>
</head><body>
<h1>Shelf model <code>{{.Name}}</code> version <code>{{.Version}}</code></h1>
<table>
<tr><th>as-of date</th><td>{{.Date}}</td></tr>
<tr><th>data window</th><td>{{.Window}}</td></tr>
<tr><th>quality gate</th><td class="{{if .GatePassed}}ok{{else}}no{{end}}">{{if .GatePassed}}passed{{else}}refused{{end}}: {{.GateReason}}</td></tr>
{{range $k, $v := .Selection}}<tr><th>selection {{$k}}</th><td>{{$v}}</td></tr>{{end}}
{{$acc := .Accounting}}{{range (call .Keys .Accounting)}}<tr><th>rows {{.}}</th><td>{{index $acc .}}</td></tr>{{end}}
</table>
<h2>Holdout metrics</h2>
<table><tr><th>recommender</th><th>ndcg@10</th><th>recall@10</th><th>hr@10</th><th>ndcg@20</th><th>recall@20</th><th>hr@20</th></tr>
{{range $name, $m := .Metrics}}<tr><td>{{$name}}</td><td>{{printf "%.4f" (index $m "ndcg@10")}}</td><td>{{printf "%.4f" (index $m "recall@10")}}</td><td>{{printf "%.4f" (index $m "hr@10")}}</td><td>{{printf "%.4f" (index $m "ndcg@20")}}</td><td>{{printf "%.4f" (index $m "recall@20")}}</td><td>{{printf "%.4f" (index $m "hr@20")}}</td></tr>
{{end}}</table>
{{range .Figures}}<h2>{{.Title}}</h2><figure><img class="plot" alt="{{.Title}}" src="{{.Src}}"><figcaption>{{.Caption}}</figcaption></figure>
{{end}}
</body></html>
`))
