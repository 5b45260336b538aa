package fuzzcorpus

import (
	"reflect"
	"testing"
)

func TestParse(t *testing.T) {
	got, err := Parse([]byte("go test fuzz v1\n[]byte(\"PAR1\\x00\\n\")\nstring(\"a\\\"b\")\n"))
	if err != nil || !reflect.DeepEqual(got, []any{[]byte("PAR1\x00\n"), "a\"b"}) {
		t.Fatalf("Parse = %#v, %v", got, err)
	}
	for _, bad := range []string{"", "go test fuzz v2\n", "go test fuzz v1\nint(3)\n", "go test fuzz v1\n[]byte(\"x)\n"} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("Parse(%q): no error", bad)
		}
	}
}
