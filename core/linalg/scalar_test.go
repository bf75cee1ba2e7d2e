package linalg

// The scalar kernels that this package had before the packed Sgemm, kept as
// the baseline of the benchmarks.

import (
	"runtime"
	"sync"
)

// oldMinParallelWork is the number of multiply-adds below which a product runs
// on the calling goroutine.
const oldMinParallelWork = 1 << 16

// oldParallelRows runs fn over [0,m) split into contiguous chunks, one per
// worker, when the work is large enough to pay for it.
func oldParallelRows(m int, work int, fn func(lo, hi int)) {
	workers := runtime.GOMAXPROCS(0)
	if workers > m {
		workers = m
	}
	if workers <= 1 || work < oldMinParallelWork {
		fn(0, m)
		return
	}
	var wg sync.WaitGroup
	chunk := (m + workers - 1) / workers
	for lo := 0; lo < m; lo += chunk {
		hi := min(lo+chunk, m)
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			fn(lo, hi)
		}(lo, hi)
	}
	wg.Wait()
}

// oldMatMulNT computes C[m,n] = A[m,k] * B[n,k]^T, adding into C when acc is
// true. This is the layout of x*W^T with W stored [out,in].
func oldMatMulNT(c, a, b []float32, m, n, k int, acc bool) {
	oldParallelRows(m, m*n*k, func(lo, hi int) {
		i := lo
		for ; i+4 <= hi; i += 4 {
			a0, a1, a2, a3 := a[i*k:(i+1)*k], a[(i+1)*k:(i+2)*k], a[(i+2)*k:(i+3)*k], a[(i+3)*k:(i+4)*k]
			for j := 0; j < n; j++ {
				bj := b[j*k : (j+1)*k]
				var s0, s1, s2, s3 float32
				for p, bv := range bj {
					s0 += a0[p] * bv
					s1 += a1[p] * bv
					s2 += a2[p] * bv
					s3 += a3[p] * bv
				}
				if acc {
					c[i*n+j] += s0
					c[(i+1)*n+j] += s1
					c[(i+2)*n+j] += s2
					c[(i+3)*n+j] += s3
				} else {
					c[i*n+j] = s0
					c[(i+1)*n+j] = s1
					c[(i+2)*n+j] = s2
					c[(i+3)*n+j] = s3
				}
			}
		}
		for ; i < hi; i++ {
			ai := a[i*k : (i+1)*k]
			for j := 0; j < n; j++ {
				s := oldDot(ai, b[j*k:(j+1)*k])
				if acc {
					c[i*n+j] += s
				} else {
					c[i*n+j] = s
				}
			}
		}
	})
}

// oldMatMulNN computes C[m,n] = A[m,k] * B[k,n], adding into C when acc is true.
func oldMatMulNN(c, a, b []float32, m, n, k int, acc bool) {
	oldParallelRows(m, m*n*k, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			ci := c[i*n : (i+1)*n]
			if !acc {
				clear(ci)
			}
			for p, av := range a[i*k : (i+1)*k] {
				if av != 0 {
					oldAxpy(av, b[p*n:(p+1)*n], ci)
				}
			}
		}
	})
}

// oldMatMulTN computes C[m,n] = A[k,m]^T * B[k,n], adding into C when acc is
// true. This is the layout of a weight gradient gy^T * x.
func oldMatMulTN(c, a, b []float32, m, n, k int, acc bool) {
	oldParallelRows(m, m*n*k, func(lo, hi int) {
		if !acc {
			clear(c[lo*n : hi*n])
		}
		for p := 0; p < k; p++ {
			bp := b[p*n : (p+1)*n]
			ap := a[p*m : (p+1)*m]
			for i := lo; i < hi; i++ {
				if av := ap[i]; av != 0 {
					oldAxpy(av, bp, c[i*n:(i+1)*n])
				}
			}
		}
	})
}

// oldDot returns the inner product of x and y[:len(x)].
func oldDot(x, y []float32) float32 {
	y = y[:len(x)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(x); i += 4 {
		s0 += x[i] * y[i]
		s1 += x[i+1] * y[i+1]
		s2 += x[i+2] * y[i+2]
		s3 += x[i+3] * y[i+3]
	}
	for ; i < len(x); i++ {
		s0 += x[i] * y[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// oldAxpy computes y += alpha*x over len(x) elements.
func oldAxpy(alpha float32, x, y []float32) {
	y = y[:len(x)]
	for i, v := range x {
		y[i] += alpha * v
	}
}
