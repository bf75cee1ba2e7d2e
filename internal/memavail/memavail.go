// Package memavail tells how much memory this process may use: the
// kernel's MemAvailable, a cgroup's limit, or SURGEON_MEMORY_AVAILABLE.
package memavail

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Env overrides the memory surgeon believes is available, in bytes
// or with a K/M/G suffix (for example on a cluster node whose limit the
// process cannot read).
const Env = "SURGEON_MEMORY_AVAILABLE"

// Available returns the memory this process may use and where the
// figure comes from: SURGEON_MEMORY_AVAILABLE, else the smaller of the
// cgroup's limit (v2 memory.max, v1 memory.limit_in_bytes) and the
// kernel's MemAvailable. ok is false when nothing can be read.
func Available() (bytes int64, from string, ok bool, err error) {
	if v := os.Getenv(Env); v != "" {
		n, err := ParseBytes(v)
		if err != nil {
			return 0, "", false, fmt.Errorf("%s=%q: %w", Env, v, err)
		}
		return n, Env, true, nil
	}
	if n, ok := meminfoAvailable(); ok {
		bytes, from = n, "MemAvailable in /proc/meminfo"
	}
	for _, f := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		raw, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64)
		if err != nil || n <= 0 || n >= 1<<60 {
			continue // "max" or the v1 "unlimited" value
		}
		if from == "" || n < bytes {
			bytes, from = n, "the cgroup limit in "+f
		}
	}
	return bytes, from, from != "", nil
}

func meminfoAvailable() (int64, bool) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemAvailable:"); ok {
			fields := strings.Fields(rest)
			if len(fields) >= 1 {
				if kb, err := strconv.ParseInt(fields[0], 10, 64); err == nil {
					return kb << 10, true
				}
			}
		}
	}
	return 0, false
}

// ParseBytes reads a size in bytes, with an optional K, M, G or T suffix
// (binary multiples; KiB, MB and the like are accepted too).
func ParseBytes(s string) (int64, error) {
	s = strings.TrimSpace(strings.ToUpper(s))
	mult := int64(1)
	for suffix, m := range map[string]int64{"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40} {
		if t, ok := strings.CutSuffix(strings.TrimSuffix(strings.TrimSuffix(s, "B"), "I"), suffix); ok {
			s, mult = t, m
			break
		}
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("not a positive size")
	}
	return int64(n * float64(mult)), nil
}
