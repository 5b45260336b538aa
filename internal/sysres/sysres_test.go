package sysres

import (
	"os"
	"path/filepath"
	"testing"
)

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cgroup string
		files  map[string]string
		want   int64
		ok     bool
	}{
		{"v2", "0::/kubepods/pod1/c1\n", map[string]string{"kubepods/pod1/c1/memory.max": "4294967296\n"}, 4 << 30, true},
		{"v2 unlimited", "0::/a\n", map[string]string{"a/memory.max": "max\n"}, 0, false},
		{"v2 parent limits", "0::/a/b\n", map[string]string{"a/b/memory.max": "max\n", "a/memory.max": "1073741824\n"}, 1 << 30, true},
		{"v1", "4:memory:/docker/x\n0::/\n", map[string]string{"memory/docker/x/memory.limit_in_bytes": "2147483648\n"}, 2 << 30, true},
		{"v1 sentinel", "4:memory:/x\n", map[string]string{"memory/x/memory.limit_in_bytes": "9223372036854771712\n"}, 0, false},
		{"none", "0::/\n", nil, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			oldRoot, oldProc := root, procCgroup
			t.Cleanup(func() { root, procCgroup = oldRoot, oldProc })
			root, procCgroup = filepath.Join(dir, "cg"), filepath.Join(dir, "cgroup")
			writeFile(t, procCgroup, tc.cgroup)
			for k, v := range tc.files {
				writeFile(t, filepath.Join(root, k), v)
			}
			got, ok := MemoryLimit()
			if got != tc.want || ok != tc.ok {
				t.Fatalf("MemoryLimit() = %d, %v; want %d, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestWorkers(t *testing.T) {
	if Workers(3) != 3 || Workers(0) != CPUs() || CPUs() < 1 {
		t.Fatalf("Workers(3)=%d Workers(0)=%d CPUs()=%d", Workers(3), Workers(0), CPUs())
	}
}
