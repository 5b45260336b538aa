package report

import (
	"bytes"
	"encoding/base64"
	"html"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func sampleInput() Input {
	in := Input{Name: "m", Version: "2024-01-01-abc", Date: "2024-01-01", GatePassed: true, GateReason: "model 0.11 >= 0.10",
		Window: "2023-01-01 → 2024-01-02", Accounting: map[string]int64{"used": 90, "duplicate": 10},
		Selection:   map[string]float64{"blend_knn": 0.25},
		History:     map[string][]Epoch{"select": {{1, 0.5, 0.05}, {2, 0.4, 0.07}, {3, 0.35, 0.06}}, "final": {{1, 0.5, 0}, {2, 0.41, 0}}},
		Metrics:     map[string]map[string]float64{"model": {"ndcg@10": 0.11, "hr@10": 0.5}, "popularity": {"ndcg@10": 0.07, "hr@10": 0.4}},
		Calibration: map[string][]Bin{"model": {{0.05, 0.04, 100}, {0.25, 0.3, 20}, {0.6, 0.55, 5}}}}
	for i := 0; i < 500; i++ {
		in.Scores = append(in.Scores, float64(i%37)/10)
	}
	for i := 0; i < 200; i++ {
		in.TrainItemCounts = append(in.TrainItemCounts, float64(1000/(i+1)))
		in.RecItemCounts = append(in.RecItemCounts, float64(300/(i+1)))
	}
	return in
}

var imgRE = regexp.MustCompile(`src="data:image/png;base64,([^"]+)"`)

func TestRenderSelfContained(t *testing.T) {
	page, err := Render(sampleInput())
	if err != nil {
		t.Fatal(err)
	}
	s := string(page)
	for _, want := range []string{"Training", "Model vs baselines", "Score distribution", "Popularity bias", "Purchase model calibration", "passed", "0.1100"} {
		if !strings.Contains(s, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(s, "http://") || strings.Contains(s, "https://") {
		t.Error("report references the network")
	}
	imgs := imgRE.FindAllStringSubmatch(s, -1)
	if len(imgs) != 5 {
		t.Fatalf("%d images, want 5", len(imgs))
	}
	for _, m := range imgs {
		data, err := base64.StdEncoding.DecodeString(html.UnescapeString(m[1]))
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(data))
		if err != nil || img.Bounds().Dx() < 100 {
			t.Fatalf("bad PNG: %v", err)
		}
	}
	// Sections without data are left out, not drawn empty.
	in := sampleInput()
	in.Calibration, in.Scores = nil, nil
	page, err = Render(in)
	if err != nil || len(imgRE.FindAllString(string(page), -1)) != 3 {
		t.Fatalf("optional sections: %v", err)
	}
}

// TestRenderInChromium opens the page in headless Chromium and checks every
// image decoded (naturalWidth > 0).
func TestRenderInChromium(t *testing.T) {
	bin, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium not installed (apt-get install chromium); CI must run this test")
		}
		t.Skip("!!! chromium not installed: report rendering NOT checked in a browser (apt-get install chromium)")
	}
	html, err := Render(sampleInput())
	if err != nil {
		t.Fatal(err)
	}
	probe := `<script>window.addEventListener('load',()=>{document.body.setAttribute('data-widths',
[...document.images].map(i=>i.naturalWidth).join(','))})</script></body>`
	page := strings.Replace(string(html), "</body>", probe, 1)
	dir := t.TempDir()
	path := filepath.Join(dir, "report.html")
	if err := os.WriteFile(path, []byte(page), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--user-data-dir="+filepath.Join(dir, "profile"),
		"--virtual-time-budget=3000", "--dump-dom", "file://"+path).Output()
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	m := regexp.MustCompile(`data-widths="([0-9,]*)"`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("no widths in the dumped DOM:\n%.500s", out)
	}
	widths := strings.Split(m[1], ",")
	if len(widths) != 5 {
		t.Fatalf("widths %v", widths)
	}
	for _, w := range widths {
		if w == "0" || w == "" {
			t.Fatalf("an image did not render: widths %v", widths)
		}
	}
}
