//go:build unix

package safetensors

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/surgeon-ml/surgeon/core/tensor"
)

// BenchmarkFreshMemory measures what BenchmarkReadToF32's "alloc" mode
// pays before any decoding: the first touch of fresh memory. It maps as
// many anonymous bytes as decoding the 1 GiB F16 file produces (2 GiB of
// float32), writes one word in each 4 KiB page, and unmaps them; and, for
// comparison, touches the same pages again while they are still mapped.
//
// Metrics: GB/s is the benchmark file's bytes per second (as in
// BenchmarkReadToF32, so the two compare directly), read-GB/s the read
// loop's over the same file, x-read their ratio. "again" is the second
// touch.
func BenchmarkFreshMemory(b *testing.B) {
	path, size := benchFile(b, tensor.F16)
	n := int(2 * size)
	page := unix.Getpagesize()
	touch := func(m []byte) {
		for i := 0; i < len(m); i += page {
			m[i] = 1
		}
	}
	for _, mode := range []string{"first", "again"} {
		b.Run(mode, func(b *testing.B) {
			var work, read time.Duration
			for b.Loop() {
				t0 := time.Now()
				readFile(b, path)
				t1 := time.Now()
				m, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
				if err != nil {
					b.Fatal(err)
				}
				t2 := time.Now()
				touch(m)
				if mode == "again" {
					t2 = time.Now()
					touch(m)
				}
				work += time.Since(t2)
				read += t1.Sub(t0)
				if err := unix.Munmap(m); err != nil {
					b.Fatal(err)
				}
			}
			total := float64(size) * float64(b.N)
			b.ReportMetric(total/work.Seconds()/1e9, "GB/s")
			b.ReportMetric(total/read.Seconds()/1e9, "read-GB/s")
			b.ReportMetric(read.Seconds()/work.Seconds(), "x-read")
		})
	}
}
