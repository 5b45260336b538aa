package model

import (
	"math"
	"sort"
)

// ReliabilityBin is one bin of a calibration (reliability) table.
type ReliabilityBin struct {
	Lo            float64 `json:"lo"`
	Hi            float64 `json:"hi"`
	Count         int     `json:"count"`
	MeanPredicted float64 `json:"mean_predicted"`
	Observed      float64 `json:"observed"`
}

// ClassMetrics evaluates probabilities against 0/1 labels.
type ClassMetrics struct {
	N           int              `json:"n"`
	Positives   int              `json:"positives"`
	AUC         float64          `json:"auc"`      // ROC AUC, ties at their average rank
	PRAUC       float64          `json:"pr_auc"`   // average precision
	LogLoss     float64          `json:"log_loss"` // probabilities clipped to [1e-7, 1-1e-7]
	Brier       float64          `json:"brier"`
	ECE         float64          `json:"ece"` // expected calibration error, 10 equal-width bins
	Reliability []ReliabilityBin `json:"reliability"`
	Invalid     int              `json:"invalid,omitempty"` // predictions that were not probabilities (NaN, ±Inf, outside [0, 1])
}

// EvaluateClassifier computes ClassMetrics of predictions p for labels y.
// A prediction that is not a probability (NaN, infinite, outside [0, 1]) is
// counted in Invalid and scored as 0.5, so that every metric stays a finite
// number; callers refuse a model with invalid predictions.
func EvaluateClassifier(p, y []float32) ClassMetrics {
	n := len(p)
	m := ClassMetrics{N: n}
	if n == 0 {
		return m
	}
	for i, v := range p {
		if !(v >= 0 && v <= 1) { // NaN too
			if m.Invalid == 0 {
				p = append([]float32(nil), p...) // the caller's slice stays as it was
			}
			p[i] = 0.5
			m.Invalid++
		}
	}
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return p[idx[a]] > p[idx[b]] })
	// ROC AUC by ranks (ascending), average rank for ties.
	var rankSum float64
	pos := 0
	for i := 0; i < n; {
		j := i + 1 // always advances, whatever the values
		for j < n && p[idx[j]] == p[idx[i]] {
			j++
		}
		// ranks from the bottom: descending positions i..j-1 have ascending ranks n-j+1..n-i
		avg := float64((n-j+1)+(n-i)) / 2
		for k := i; k < j; k++ {
			if y[idx[k]] > 0.5 {
				rankSum += avg
				pos++
			}
		}
		i = j
	}
	m.Positives = pos
	neg := n - pos
	if pos > 0 && neg > 0 {
		m.AUC = (rankSum - float64(pos)*float64(pos+1)/2) / (float64(pos) * float64(neg))
	}
	// Average precision over the descending ranking.
	if pos > 0 {
		hits := 0
		for k, i := range idx {
			if y[i] > 0.5 {
				hits++
				m.PRAUC += float64(hits) / float64(k+1)
			}
		}
		m.PRAUC /= float64(pos)
	}
	const bins = 10
	m.Reliability = make([]ReliabilityBin, bins)
	for b := range m.Reliability {
		m.Reliability[b].Lo, m.Reliability[b].Hi = float64(b)/bins, float64(b+1)/bins
	}
	for i := range p {
		q := math.Min(math.Max(float64(p[i]), 1e-7), 1-1e-7)
		t := float64(y[i])
		m.LogLoss -= t*math.Log(q) + (1-t)*math.Log(1-q)
		m.Brier += (float64(p[i]) - t) * (float64(p[i]) - t)
		b := min(int(float64(p[i])*bins), bins-1)
		m.Reliability[b].Count++
		m.Reliability[b].MeanPredicted += float64(p[i])
		m.Reliability[b].Observed += t
	}
	m.LogLoss /= float64(n)
	m.Brier /= float64(n)
	for b := range m.Reliability {
		r := &m.Reliability[b]
		if r.Count > 0 {
			r.MeanPredicted /= float64(r.Count)
			r.Observed /= float64(r.Count)
			m.ECE += float64(r.Count) / float64(n) * math.Abs(r.MeanPredicted-r.Observed)
		}
	}
	return m
}

// Logistic is a logistic regression on selected feature columns.
type Logistic struct {
	Cols []int
	W    []float64 // len(Cols)+1, bias last
}

// FitLogistic fits a logistic regression with L2 penalty l2 on the
// columns cols of the n×f matrix x by Newton's method (IRLS): exact,
// deterministic and fast for the handful of columns it is meant for.
func FitLogistic(x, y []float32, f int, cols []int, l2 float64) *Logistic {
	d := len(cols) + 1
	w := make([]float64, d)
	n := len(y)
	row := make([]float64, d)
	for iter := 0; iter < 25; iter++ {
		g := make([]float64, d)
		h := make([]float64, d*d)
		for i := 0; i < n; i++ {
			for k, c := range cols {
				row[k] = float64(x[i*f+c])
			}
			row[d-1] = 1
			z := 0.0
			for k := range row {
				z += w[k] * row[k]
			}
			p := 1 / (1 + math.Exp(-z))
			r := p - float64(y[i])
			s := p * (1 - p)
			for a := 0; a < d; a++ {
				g[a] += r * row[a]
				for b := 0; b < d; b++ {
					h[a*d+b] += s * row[a] * row[b]
				}
			}
		}
		for a := 0; a < d-1; a++ {
			g[a] += l2 * float64(n) * w[a]
			h[a*d+a] += l2 * float64(n)
		}
		for a := 0; a < d; a++ {
			h[a*d+a] += 1e-9
		}
		step := solve(h, g, d)
		var change float64
		for a := range w {
			w[a] -= step[a]
			change = math.Max(change, math.Abs(step[a]))
		}
		if change < 1e-8 {
			break
		}
	}
	return &Logistic{Cols: append([]int(nil), cols...), W: w}
}

// Predict returns P(y=1) for one feature row.
func (l *Logistic) Predict(row []float32) float32 {
	z := l.W[len(l.W)-1]
	for k, c := range l.Cols {
		z += l.W[k] * float64(row[c])
	}
	return float32(1 / (1 + math.Exp(-z)))
}

// solve returns A⁻¹b for a symmetric positive-definite d×d A (Gaussian
// elimination with partial pivoting; A and b are not modified).
func solve(a, b []float64, d int) []float64 {
	m := make([]float64, d*(d+1))
	for i := 0; i < d; i++ {
		copy(m[i*(d+1):], a[i*d:(i+1)*d])
		m[i*(d+1)+d] = b[i]
	}
	for c := 0; c < d; c++ {
		p := c
		for r := c + 1; r < d; r++ {
			if math.Abs(m[r*(d+1)+c]) > math.Abs(m[p*(d+1)+c]) {
				p = r
			}
		}
		for k := 0; k <= d; k++ {
			m[c*(d+1)+k], m[p*(d+1)+k] = m[p*(d+1)+k], m[c*(d+1)+k]
		}
		for r := c + 1; r < d; r++ {
			fct := m[r*(d+1)+c] / m[c*(d+1)+c]
			for k := c; k <= d; k++ {
				m[r*(d+1)+k] -= fct * m[c*(d+1)+k]
			}
		}
	}
	out := make([]float64, d)
	for r := d - 1; r >= 0; r-- {
		s := m[r*(d+1)+d]
		for k := r + 1; k < d; k++ {
			s -= m[r*(d+1)+k] * out[k]
		}
		out[r] = s / m[r*(d+1)+r]
	}
	return out
}

// RecentBuyer is the "bought in the last 7 days" baseline: the training
// purchase rate of users with and without a purchase in the last 7 days.
type RecentBuyer struct {
	Col       int // the days-since-last-purchase column
	PYes, PNo float32
}

// recentDays is the baseline's "recent": a purchase less than 7 days ago.
const recentDays = 7

// FitRecentBuyer estimates both rates (Laplace-smoothed) on training rows;
// col holds the (unscaled) days since the last purchase.
func FitRecentBuyer(x, y []float32, f, col int) *RecentBuyer {
	var ny, py, nn, pn float64
	for i := range y {
		if x[i*f+col] < recentDays {
			ny++
			py += float64(y[i])
		} else {
			nn++
			pn += float64(y[i])
		}
	}
	return &RecentBuyer{Col: col, PYes: float32((py + 1) / (ny + 2)), PNo: float32((pn + 1) / (nn + 2))}
}

// Predict implements the baseline for one (unscaled) feature row.
func (r *RecentBuyer) Predict(row []float32) float32 {
	if row[r.Col] < recentDays {
		return r.PYes
	}
	return r.PNo
}
