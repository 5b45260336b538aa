// Package report renders a model version's report.html: a self-contained
// page (plots embedded as PNG data URIs, no network) that a data engineer
// reads in a minute — the decision first, then the evidence: the holdout
// table with the published row marked and every recommender explained, the
// purchase model, the input accounting, the choices validation made, and
// plots with one quantity per axis.
package report

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"html/template"
	"image/color"
	"math"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
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

// Row is one labelled value of a key/value table.
type Row struct{ Name, Value string }

// Decision is what the run did with its table and LATEST, and why.
type Decision struct {
	Source     string // "model", a baseline's name, or "" (no table from this version)
	Passed     bool   // the model passed its gate
	Reason     string // the gate's reason
	Metric     string // e.g. ndcg@10
	Latest     string // what happened to LATEST ("" = not known when the report was written)
	TestUsers  int
	Evidence   string // selection's fallback without enough validation users ("" = chosen on validation)
	Similarity string // the item component chosen, e.g. "ease(lambda=4)"
}

// Purchase is the purchase model's summary.
type Purchase struct {
	Passed  bool
	Reason  string
	Skipped string                        // the stage stepped aside, and why
	Metrics map[string]map[string]float64 // model → auc, pr_auc, log_loss, brier, ece
}

// Input is everything the page shows.
type Input struct {
	Name, Version, Date string
	Decision            Decision
	Window              string
	Windows             string // how the holdout windows were chosen
	Accounting          []Row
	Selection           []Row
	History             map[string][]Epoch            // phase → epochs
	Metrics             map[string]map[string]float64 // recommender → metric → value
	Scores              []float64                     // recommendation scores (a sample)
	RecItemCounts       []float64                     // per item: times recommended in the sample
	TrainItemCounts     []float64                     // per item: training interactions
	Purchase            *Purchase
	Calibration         map[string][]Bin // purchase model and baselines
}

// explanations name what each row of the holdout table is.
var explanations = map[string]string{
	"model":                  "the published hybrid: the neural model, the item component, recent popularity and the sequence encoder, blended with weights chosen on the validation window",
	"neural":                 "the Gorgonia ranking model alone (user and item embeddings into an MLP head)",
	"blend_without_neural":   "the same blend without the neural model: what the neural model adds",
	"sequence":               "the sequence encoder alone (causal self-attention over the user's last events, in Gorgonia)",
	"blend_without_sequence": "the same blend without the sequence encoder: what the encoder adds",
	"itemknn_recency":        "the hybrid's item-item component alone, with the user's history decayed by age",
	"itemknn":                "baseline: cosine item-item neighbours of the user's history",
	"popularity":             "baseline: the most popular items, time-decayed",
	"latest":                 "the current LATEST version's evaluation model, measured on this run's window",
}

// order puts the published recommender first, then the rest by the gate
// metric, best first.
func order(m map[string]map[string]float64, metric, published string) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Slice(names, func(a, b int) bool {
		if (names[a] == published) != (names[b] == published) {
			return names[a] == published
		}
		va, vb := m[names[a]][metric], m[names[b]][metric]
		if va != vb {
			return va > vb
		}
		return names[a] < names[b]
	})
	return names
}

type figure struct {
	Title, Caption string
	Src            template.URL
}

type metricRow struct {
	Name, Explain string
	Published     bool
	Values        []string
}

var holdoutCols = []string{"ndcg@10", "recall@10", "hr@10", "map@10", "ndcg@20", "hr@20", "coverage@10"}

var purchaseCols = []string{"auc", "pr_auc", "log_loss", "brier", "ece"}

// Render produces the HTML page.
func Render(in Input) ([]byte, error) {
	plot.DefaultFont = font.Font{Typeface: "Liberation", Variant: "Sans"}
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
	metric := in.Decision.Metric
	if metric == "" {
		metric = "ndcg@10"
	}
	steps := []struct {
		title, caption string
		mk             func() (*plot.Plot, error)
	}{
		{"Training loss", "mean loss per epoch of each fit (select: early stopping on validation; evaluate: the holdout model; final: the published one)",
			func() (*plot.Plot, error) { return curves(in.History, false, "loss") }},
		{"Validation " + metric, "the neural model alone on the validation window after each epoch of the select fit; the best epoch is the one refit",
			func() (*plot.Plot, error) { return curves(in.History, true, metric) }},
		{"Score distribution", "scores of the published recommendations (a sample of users)", func() (*plot.Plot, error) { return histogram(in.Scores) }},
		{"Popularity bias", "share of the recommendations (and of the training interactions) going to the most popular items", func() (*plot.Plot, error) { return bias(in.RecItemCounts, in.TrainItemCounts) }},
		{"Purchase model calibration", "mean predicted probability against the observed purchase rate per bin (the numbers are the users per bin); on the diagonal is perfect",
			func() (*plot.Plot, error) { return calibration(in.Calibration) }},
	}
	for _, s := range steps {
		if err := add(s.title, s.caption, s.mk); err != nil {
			return nil, err
		}
	}
	published := in.Decision.Source
	var rows []metricRow
	for _, name := range order(in.Metrics, metric, published) {
		r := metricRow{Name: name, Explain: explanations[name], Published: name == published && published != ""}
		if name == "itemknn_recency" && in.Decision.Similarity != "" {
			r.Explain += " (" + in.Decision.Similarity + ")"
		}
		for _, c := range holdoutCols {
			r.Values = append(r.Values, num(in.Metrics[name], c))
		}
		rows = append(rows, r)
	}
	var prows []metricRow
	if in.Purchase != nil {
		names := make([]string, 0, len(in.Purchase.Metrics))
		for k := range in.Purchase.Metrics {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, n := range names {
			r := metricRow{Name: n}
			for _, c := range purchaseCols {
				r.Values = append(r.Values, num(in.Purchase.Metrics[n], c))
			}
			prows = append(prows, r)
		}
	}
	var buf bytes.Buffer
	err := page.Execute(&buf, struct {
		Input
		Headline, Class string
		Figures         []figure
		Rows            []metricRow
		Cols            []string
		PurchaseRows    []metricRow
		PurchaseCols    []string
		Bins            []calRow
	}{in, headline(in.Decision), class(in.Decision), figs, rows, holdoutCols, prows, purchaseCols, calRows(in.Calibration)})
	return buf.Bytes(), err
}

func num(m map[string]float64, k string) string {
	v, ok := m[k]
	if !ok || math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%.4f", v)
}

func headline(d Decision) string {
	switch {
	case d.Source == "model":
		return "Published: the model's table. It passed its gate."
	case d.Source != "":
		return "Published: the " + d.Source + " baseline's table. The model did not pass, so LATEST stays on the last model that did."
	}
	return "No table from this version: the model was refused and the date keeps its table."
}

func class(d Decision) string {
	switch {
	case d.Source == "model":
		return "ok"
	case d.Source != "":
		return "warn"
	}
	return "no"
}

type calRow struct {
	Model string
	Bins  []Bin
}

func calRows(c map[string][]Bin) []calRow {
	names := make([]string, 0, len(c))
	for k := range c {
		names = append(names, k)
	}
	sort.Strings(names)
	var out []calRow
	for _, n := range names {
		var bins []Bin
		for _, b := range c[n] {
			if b.Count > 0 {
				bins = append(bins, b)
			}
		}
		out = append(out, calRow{n, bins})
	}
	return out
}

// toPNG draws p at 144 dpi (sharp on high-density screens, 1008 px wide).
func toPNG(p *plot.Plot) (template.URL, error) {
	style(p)
	c := vgimg.NewWith(vgimg.UseWH(7*vg.Inch, 3.2*vg.Inch), vgimg.UseDPI(144))
	p.Draw(draw.New(c))
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: c}).WriteTo(&buf); err != nil {
		return "", err
	}
	return template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes())), nil
}

// style sets legible sizes: 12 pt labels, 10 pt ticks, legends in a box
// outside the data's way (the caller chooses the corner).
func style(p *plot.Plot) {
	p.X.Label.TextStyle.Font.Size, p.Y.Label.TextStyle.Font.Size = vg.Points(12), vg.Points(12)
	p.X.Tick.Label.Font.Size, p.Y.Tick.Label.Font.Size = vg.Points(10), vg.Points(10)
	p.Legend.TextStyle.Font.Size = vg.Points(10)
	p.Add(plotter.NewGrid())
}

var palette = []color.Color{
	color.RGBA{R: 31, G: 119, B: 180, A: 255},
	color.RGBA{R: 255, G: 127, B: 14, A: 255},
	color.RGBA{R: 44, G: 160, B: 44, A: 255},
	color.RGBA{R: 214, G: 39, B: 40, A: 255},
}

// curves plots the loss (validation=false) or the validation metric of
// each phase per epoch: one quantity per plot, so each has its own axis.
func curves(h map[string][]Epoch, validation bool, label string) (*plot.Plot, error) {
	phases := make([]string, 0, len(h))
	for k := range h {
		phases = append(phases, k)
	}
	sort.Strings(phases)
	p := plot.New()
	p.X.Label.Text, p.Y.Label.Text = "epoch", label
	n := 0
	for i, ph := range phases {
		var xy plotter.XYs
		for _, e := range h[ph] {
			v := e.Loss
			if validation {
				v = e.Validation
			}
			if validation && v == 0 {
				continue
			}
			xy = append(xy, plotter.XY{X: float64(e.Epoch), Y: v})
		}
		if len(xy) == 0 {
			continue
		}
		l, s, err := plotter.NewLinePoints(xy)
		if err != nil {
			return nil, err
		}
		l.Color, s.Color = palette[i%len(palette)], palette[i%len(palette)]
		l.Width = vg.Points(2)
		p.Add(l, s)
		p.Legend.Add(ph, l)
		n++
	}
	if n == 0 {
		return nil, nil
	}
	// the loss falls: its legend goes top right; the validation metric
	// rises then flattens: bottom right
	p.Legend.Top = !validation
	p.Legend.XOffs = -vg.Points(6)
	if n == 1 {
		p.Legend = plot.NewLegend()
	}
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
	h.FillColor = palette[0]
	h.LineStyle.Width = 0
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
	p.Y.Min, p.Y.Max = 0, 1.25 // headroom above the bars for the legend
	fracs := []float64{0.01, 0.1, 0.5}
	w := vg.Points(28)
	for i, series := range [][]float64{train, rec} {
		vals := make(plotter.Values, len(fracs))
		for j, f := range fracs {
			vals[j] = topShare(series, train, f)
		}
		b, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return nil, err
		}
		b.Color, b.LineStyle.Width = palette[i], 0
		b.Offset = w * vg.Length(2*i-1) / 2
		p.Add(b)
		p.Legend.Add([]string{"training interactions", "recommendations"}[i], b)
	}
	p.NominalX("top 1% of items", "top 10% of items", "top 50% of items")
	p.Legend.Top, p.Legend.Left = true, true
	p.Legend.XOffs = vg.Points(6)
	return p, nil
}

func calibration(c map[string][]Bin) (*plot.Plot, error) {
	if len(c) == 0 {
		return nil, nil
	}
	p := plot.New()
	p.X.Label.Text, p.Y.Label.Text = "mean predicted probability", "observed purchase rate"
	hi := 0.0
	for _, bins := range c {
		for _, b := range bins {
			if b.Count > 0 {
				hi = max(hi, b.MeanPredicted, b.Observed)
			}
		}
	}
	hi = math.Min(1, math.Max(0.05, hi*1.1))
	p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = 0, hi, 0, hi
	diag, err := plotter.NewLine(plotter.XYs{{X: 0, Y: 0}, {X: hi, Y: hi}})
	if err != nil {
		return nil, err
	}
	diag.Color, diag.Dashes = color.Gray{Y: 140}, []vg.Length{vg.Points(4), vg.Points(3)}
	p.Add(diag)
	names := make([]string, 0, len(c))
	for k := range c {
		names = append(names, k)
	}
	sort.Strings(names)
	for i, n := range names {
		var xy plotter.XYs
		var labels []string
		for _, b := range c[n] {
			if b.Count > 0 {
				xy = append(xy, plotter.XY{X: b.MeanPredicted, Y: b.Observed})
				labels = append(labels, fmt.Sprint(b.Count))
			}
		}
		if len(xy) == 0 {
			continue
		}
		l, s, err := plotter.NewLinePoints(xy)
		if err != nil {
			return nil, err
		}
		l.Color, s.Color = palette[i%len(palette)], palette[i%len(palette)]
		p.Add(l, s)
		p.Legend.Add(n, l)
		if n == "model" || len(names) == 1 { // the users per bin of the published model
			lb, err := plotter.NewLabels(plotter.XYLabels{XYs: xy, Labels: labels})
			if err == nil {
				for q := range lb.TextStyle {
					lb.TextStyle[q].Font.Size = vg.Points(8)
				}
				lb.Offset = vg.Point{X: vg.Points(4), Y: vg.Points(4)}
				p.Add(lb)
			}
		}
	}
	p.Legend.Top, p.Legend.Left = true, true
	p.Legend.XOffs = vg.Points(6)
	return p, nil
}

var page = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Shelf {{.Name}} {{.Version}}</title>
<style>
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Liberation Sans",sans-serif;max-width:64rem;margin:1.5rem auto;padding:0 1rem;color:#1d1d1f}
h1{font-size:1.35rem;margin:.2rem 0 1rem}h2{font-size:1.1rem;margin:1.8rem 0 .5rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
code{font-size:.92em}table{border-collapse:collapse;margin:.3rem 0}td,th{padding:.25rem .6rem;text-align:left;border-bottom:1px solid #e5e5e5;vertical-align:top}
th{font-weight:600;background:#f6f6f6}td.n{text-align:right;font-variant-numeric:tabular-nums}
.decision{border-left:6px solid;padding:.7rem 1rem;margin:0 0 1rem;background:#fafafa}
.decision p{margin:.2rem 0}.decision .big{font-size:1.15rem;font-weight:600}
.ok{border-color:#1a7f37}.warn{border-color:#bf8700}.no{border-color:#cf222e}
tr.pub td{background:#e8f5ec;font-weight:600}.tag{font-size:.75rem;background:#1a7f37;color:#fff;border-radius:3px;padding:0 .35rem;margin-left:.4rem}
.explain{color:#555;font-size:.88rem}figure{margin:.4rem 0}img.plot{width:100%;max-width:56rem;height:auto}figcaption{color:#555;font-size:.88rem}
.cols{display:flex;gap:2rem;flex-wrap:wrap}
</style>
</head><body>
<h1>Shelf · model <code>{{.Name}}</code> · version <code>{{.Version}}</code> · as of {{.Date}}</h1>
<div class="decision {{.Class}}" id="decision">
<p class="big">{{.Headline}}</p>
<p>Gate on {{.Decision.Metric}} over {{.Decision.TestUsers}} test users: {{.Decision.Reason}}</p>
{{if .Decision.Latest}}<p>LATEST: {{.Decision.Latest}}</p>{{end}}
{{if .Decision.Evidence}}<p>Selection: {{.Decision.Evidence}}</p>{{end}}
{{if .Purchase}}<p>Purchase predictions: {{if .Purchase.Skipped}}skipped — {{.Purchase.Skipped}}{{else if .Purchase.Passed}}published — {{.Purchase.Reason}}{{else}}not published — {{.Purchase.Reason}}{{end}}</p>{{end}}
</div>

<h2 id="holdout">Holdout: every recommender on the same test window</h2>
<p class="explain">Test window {{.Window}}. Full ranking over every training item, the user's excluded items left out; the highlighted row is the table this version published.</p>
<table>
<tr><th>recommender</th>{{range .Cols}}<th>{{.}}</th>{{end}}</tr>
{{range .Rows}}<tr{{if .Published}} class="pub"{{end}}><td>{{.Name}}{{if .Published}}<span class="tag">published</span>{{end}}<div class="explain">{{.Explain}}</div></td>{{range .Values}}<td class="n">{{.}}</td>{{end}}</tr>
{{end}}</table>

{{if .PurchaseRows}}<h2 id="purchase">Purchase model: who buys in the next week</h2>
<p class="explain">Held-out week. <code>model</code> is the Gorgonia MLP; <code>logistic_rfm</code> (logistic regression on recency, frequency and spend) and <code>bought_last_7d</code> are its baselines, fit on the same rows. Higher is better for AUC and PR AUC, lower for log-loss, Brier and ECE; the gate compares log-loss.</p>
<table><tr><th>model</th>{{range .PurchaseCols}}<th>{{.}}</th>{{end}}</tr>
{{range .PurchaseRows}}<tr><td>{{.Name}}</td>{{range .Values}}<td class="n">{{.}}</td>{{end}}</tr>
{{end}}</table>
{{range .Bins}}<details><summary>Calibration bins of {{.Model}}</summary><table><tr><th>mean predicted</th><th>observed</th><th>users</th></tr>
{{range .Bins}}<tr><td class="n">{{printf "%.4f" .MeanPredicted}}</td><td class="n">{{printf "%.4f" .Observed}}</td><td class="n">{{.Count}}</td></tr>{{end}}
</table></details>{{end}}
{{end}}

<div class="cols">
<div><h2 id="inputs">Input rows</h2><table>{{range .Accounting}}<tr><th>{{.Name}}</th><td class="n">{{.Value}}</td></tr>{{end}}</table></div>
<div><h2 id="choices">What validation chose</h2><table>{{range .Selection}}<tr><th>{{.Name}}</th><td>{{.Value}}</td></tr>{{end}}
{{if .Windows}}<tr><th>windows</th><td>{{.Windows}}</td></tr>{{end}}</table></div>
</div>

{{range .Figures}}<h2>{{.Title}}</h2><figure><img class="plot" alt="{{.Title}}" src="{{.Src}}"><figcaption>{{.Caption}}</figcaption></figure>
{{end}}
</body></html>
`))
