package configs

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// unknownField is yaml.v3's message for a key no struct field takes.
var unknownField = regexp.MustCompile(`^line (\d+): field (\S+) not found in type configs\.(\w+)$`)

// wrongType is yaml.v3's message for a value of the wrong kind.
var wrongType = regexp.MustCompile(`^line (\d+): cannot unmarshal !!(\w+) ` + "`" + `([^` + "`" + `]*)` + "`" + ` into (\S+)$`)

// explain rewrites yaml.v3's decoding errors in the config's own terms: an
// unknown key gets its full path, the keys that section takes and the
// nearest one ("did you mean"), a wrong value its path-free description.
func explain(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	paths := sectionPaths()
	var msgs []string
	for _, e := range te.Errors {
		if m := unknownField.FindStringSubmatch(e); m != nil {
			section, keys := paths[m[3]], sectionKeys(m[3])
			key := m[2]
			if section != "" {
				key = section + "." + m[2]
			}
			msg := fmt.Sprintf("line %s: unknown key %q", m[1], key)
			if near := nearest(m[2], keys); near != "" {
				if section != "" {
					near = section + "." + near
				}
				msg += fmt.Sprintf(" — did you mean %q?", near)
			}
			if len(keys) > 0 {
				msg += fmt.Sprintf(" (keys here: %s)", strings.Join(keys, ", "))
			}
			msgs = append(msgs, msg)
			continue
		}
		if m := wrongType.FindStringSubmatch(e); m != nil {
			msgs = append(msgs, fmt.Sprintf("line %s: %q is a %s, the setting wants %s", m[1], m[3], yamlKind(m[2]), goKind(m[4])))
			continue
		}
		msgs = append(msgs, e)
	}
	return errors.New(strings.Join(msgs, "; "))
}

func yamlKind(tag string) string {
	switch tag {
	case "str":
		return "string"
	case "int", "float":
		return "number"
	case "seq":
		return "list"
	case "map":
		return "mapping"
	}
	return tag
}

func goKind(t string) string {
	switch {
	case strings.HasPrefix(t, "[]") || t == "configs.IntList":
		return "a list"
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"):
		return "a whole number"
	case strings.HasPrefix(t, "float"):
		return "a number"
	case t == "bool":
		return "true or false"
	case t == "string":
		return "a string"
	case strings.HasPrefix(t, "configs."):
		return "a mapping (a section)"
	}
	return t
}

// sectionPaths maps each config struct type name to its YAML path.
func sectionPaths() map[string]string {
	out := map[string]string{}
	var rec func(t reflect.Type, prefix string)
	rec = func(t reflect.Type, prefix string) {
		out[t.Name()] = prefix
		for i := range t.NumField() {
			f := t.Field(i)
			tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
			ft := f.Type
			if ft.Kind() == reflect.Slice {
				ft = ft.Elem()
			}
			if ft.Kind() != reflect.Struct || tag == "" {
				continue
			}
			p := tag
			if prefix != "" {
				p = prefix + "." + tag
			}
			if f.Type.Kind() == reflect.Slice {
				p += "[]"
			}
			rec(ft, p)
		}
	}
	rec(reflect.TypeOf(Config{}), "")
	return out
}

// sectionKeys are the YAML keys of the config struct type named name.
func sectionKeys(name string) []string {
	var find func(t reflect.Type) reflect.Type
	find = func(t reflect.Type) reflect.Type {
		if t.Name() == name {
			return t
		}
		for i := range t.NumField() {
			ft := t.Field(i).Type
			if ft.Kind() == reflect.Slice {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				if r := find(ft); r != nil {
					return r
				}
			}
		}
		return nil
	}
	t := find(reflect.TypeOf(Config{}))
	if t == nil {
		return nil
	}
	var keys []string
	for i := range t.NumField() {
		if tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]; tag != "" && tag != "-" {
			keys = append(keys, tag)
		}
	}
	sort.Strings(keys)
	return keys
}

// nearest is the key closest to s by edit distance, if close enough to be
// a likely typo (at most a third of its length, and at least 1 apart from
// the next best).
func nearest(s string, keys []string) string {
	best, bestD := "", 1<<30
	for _, k := range keys {
		if d := editDistance(strings.ToLower(s), strings.ToLower(k)); d < bestD {
			best, bestD = k, d
		}
	}
	if bestD <= max(1, len(s)/3) {
		return best
	}
	return ""
}

// editDistance is the optimal-string-alignment distance: insertions,
// deletions, substitutions and swaps of neighbours each cost 1.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+c)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
