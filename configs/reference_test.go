package configs

import (
	"encoding/json"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"math"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

var update = flag.Bool("update", false, "rewrite docs/configuration.md")

const referencePath = "../docs/configuration.md"

// fieldDocs maps "TypeName.FieldName" to the field's doc or line comment in
// this package's sources, and "TypeName" to the type's doc comment.
func fieldDocs(t *testing.T) map[string]string {
	t.Helper()
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, ".", func(fi os.FileInfo) bool { return !strings.HasSuffix(fi.Name(), "_test.go") }, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	docs := map[string]string{}
	text := func(g *ast.CommentGroup) string {
		if g == nil {
			return ""
		}
		return strings.Join(strings.Fields(g.Text()), " ")
	}
	for _, p := range pkgs {
		for _, f := range p.Files {
			for _, d := range f.Decls {
				g, ok := d.(*ast.GenDecl)
				if !ok {
					continue
				}
				for _, sp := range g.Specs {
					ts, ok := sp.(*ast.TypeSpec)
					if !ok {
						continue
					}
					docs[ts.Name.Name] = text(g.Doc)
					st, ok := ts.Type.(*ast.StructType)
					if !ok {
						continue
					}
					for _, fl := range st.Fields.List {
						d := text(fl.Doc)
						if c := text(fl.Comment); c != "" {
							d = strings.TrimSpace(d + " " + c)
						}
						for _, n := range fl.Names {
							docs[ts.Name.Name+"."+n.Name] = d
						}
					}
				}
			}
		}
	}
	return docs
}

// formatDefault writes a default value the way a YAML file would hold it.
func formatDefault(v reflect.Value) string {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return "—"
		}
		return formatDefault(v.Elem())
	case reflect.String:
		if v.String() == "" {
			return "—"
		}
		return "`" + v.String() + "`"
	case reflect.Slice:
		if v.Len() == 0 {
			return "—"
		}
		if v.Type().Elem().Kind() == reflect.Struct {
			var parts []string
			for i := range v.Len() {
				b, _ := json.Marshal(v.Index(i).Interface())
				parts = append(parts, string(b))
			}
			return "`" + strings.Join(parts, ", ") + "`"
		}
		var parts []string
		for i := range v.Len() {
			parts = append(parts, strings.Trim(formatDefault(v.Index(i)), "`"))
		}
		return "`[" + strings.Join(parts, ", ") + "]`"
	case reflect.Float32, reflect.Float64:
		f := v.Float()
		if a := math.Abs(f); a == 0 || a >= 1e-4 && a < 1e12 {
			return "`" + strconv.FormatFloat(f, 'f', -1, 64) + "`"
		}
		return fmt.Sprintf("`%g`", f)
	}
	return fmt.Sprintf("`%v`", v.Interface())
}

// plain drops a Go doc comment's leading identifier: "Name is the x" →
// "The x", "Name bounds y" → "Bounds y".
func plain(doc, name string) string {
	rest, ok := strings.CutPrefix(doc, name+" ")
	if !ok {
		return doc
	}
	for _, verb := range []string{"is ", "are "} {
		if r, ok := strings.CutPrefix(rest, verb); ok {
			rest = r
			break
		}
	}
	r := []rune(rest)
	if len(r) > 0 {
		r[0] = unicode.ToUpper(r[0])
	}
	return string(r)
}

// reference renders docs/configuration.md from the config structs: every
// leaf setting with its default, whether it changes the version id, and its
// doc comment.
func reference(t *testing.T) string {
	docs := fieldDocs(t)
	var b strings.Builder
	b.WriteString(`# Configuration reference

<!-- generated from configs/*.go by ` + "`go test ./configs -run TestConfigReference -update`" + `: edit the Go doc comments, not this file -->

Settings come from, in order: the defaults below → the YAML file (` + "`--config`" + ` or ` + "`$SHELF_CONFIG`" + `;
unknown keys are errors, with the nearest known key suggested) → ` + "`SHELF_*`" + ` environment variables
(the YAML path in upper case joined by ` + "`_`" + `: ` + "`SHELF_TRAIN_EPOCHS=10`" + `, ` + "`SHELF_EVENTS_URL=…`" + `;
lists comma-separated) → flags (` + "`--date`, `--events-url`, `--output-url`" + `). Every run writes its effective configuration
to its version's ` + "`config.yaml`" + `. A value that cannot work is refused before any data is read,
with every problem at once (exit 2).

**Version** says whether a setting is part of the version id: *result* settings define what a run
produces (changing one makes a new version and a retrain); *operational* ones (shards, workers,
leases, timeouts, limits, the Pushgateway, the privacy list's location) do not.

`)
	d := reflect.ValueOf(Default())
	var walk func(v reflect.Value, typ reflect.Type, prefix string)
	walk = func(v reflect.Value, typ reflect.Type, prefix string) {
		type row struct{ key, def, ver, doc string }
		var rows []row
		var subs []reflect.StructField
		for i := range typ.NumField() {
			f := typ.Field(i)
			tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if tag == "" || tag == "-" {
				continue
			}
			path := tag
			if prefix != "" {
				path = prefix + "." + tag
			}
			if f.Type.Kind() == reflect.Struct {
				subs = append(subs, f)
				continue
			}
			doc := plain(docs[typ.Name()+"."+f.Name], f.Name)
			if doc == "" {
				t.Errorf("%s (%s.%s) has no doc comment", path, typ.Name(), f.Name)
			}
			ver := "result"
			if path == "date" {
				ver = "result (the id starts with it)"
			} else if IsOperational(path) {
				ver = "operational"
			}
			rows = append(rows, row{"`" + path + "`", formatDefault(v.Field(i)), ver, strings.ReplaceAll(doc, "|", "\\|")})
		}
		if len(rows) > 0 {
			title := prefix
			if title == "" {
				title = "top level"
			}
			fmt.Fprintf(&b, "## %s\n\n", title)
			if td := plain(docs[typ.Name()], typ.Name()); td != "" && prefix != "" {
				fmt.Fprintf(&b, "%s\n\n", td)
			}
			b.WriteString("| key | default | version | meaning |\n|---|---|---|---|\n")
			for _, r := range rows {
				fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", r.key, r.def, r.ver, r.doc)
			}
			b.WriteString("\n")
		}
		for _, f := range subs {
			tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
			path := tag
			if prefix != "" {
				path = prefix + "." + tag
			}
			walk(v.FieldByName(f.Name), f.Type, path)
		}
	}
	walk(d, d.Type(), "")
	return b.String()
}

// TestConfigReference keeps docs/configuration.md equal to what the config
// structs say, and every setting documented.
func TestConfigReference(t *testing.T) {
	want := reference(t)
	got, err := os.ReadFile(referencePath)
	if err == nil && string(got) == want {
		return
	}
	if !*update {
		t.Fatalf("%s is stale (or missing: %v): run go test ./configs -run TestConfigReference -update", referencePath, err)
	}
	if err := os.WriteFile(referencePath, []byte(want), 0o644); err != nil {
		t.Fatal(err)
	}
}
