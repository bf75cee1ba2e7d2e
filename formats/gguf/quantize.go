package gguf

import (
	"encoding/binary"
	"fmt"
	"math"
	"runtime"
	"sync"

	"github.com/surgeon-ml/surgeon/core/tensor"
)

// This file holds the reference quantizers: the same blocks, byte for
// byte, as ggml's quantize_row_*_ref (ggml-quants.c), the functions
// llama.cpp uses to write files without an importance matrix. As in
// dequant.go, every float32 operation is done in ggml's order and products
// feeding a sum are rounded explicitly, so no FMA changes a result.

// quantizer encodes whole rows: len(src) is a multiple of the block size
// and dst has room for its blocks.
type quantizer func(dst []byte, src []float32)

var quantizers = map[GGMLType]quantizer{
	TypeF32:    quantF32,
	TypeF16:    quantF16,
	TypeBF16:   quantBF16,
	TypeQ4_0:   quantQ4_0,
	TypeQ4_1:   quantQ4_1,
	TypeQ5_0:   quantQ5_0,
	TypeQ5_1:   quantQ5_1,
	TypeQ8_0:   quantQ8_0,
	TypeQ2_K:   quantQ2K,
	TypeQ3_K:   quantQ3K,
	TypeQ4_K:   quantQ4K,
	TypeQ5_K:   quantQ5K,
	TypeQ6_K:   quantQ6K,
	TypeIQ4_NL: quantIQ4NL,
	TypeIQ4_XS: quantIQ4XS,
}

// Quantizable reports whether Quantize encodes this type.
func (t GGMLType) Quantizable() bool { _, ok := quantizers[t]; return ok }

// Quantize encodes src as ggml type t, producing the bytes ggml's
// quantize_row_*_ref produces for the same row (for F16 and BF16, ggml's
// conversions). len(src) must be a multiple of the type's block size.
// Quantizing several rows one after another gives the same bytes as
// quantizing them in one call, except for IQ4_NL blocks that are all zeros,
// whose (unused) indices ggml carries over from the previous block of the
// same call.
func Quantize(t GGMLType, src []float32) ([]byte, error) {
	q, ok := quantizers[t]
	if !ok {
		return nil, fmt.Errorf("ggml type %s cannot be quantized (supported: %s): %w", t, supportedList(), ErrUnsupportedType)
	}
	bs := t.BlockSize()
	if len(src)%bs != 0 {
		return nil, fmt.Errorf("%d elements are not a whole number of %d-element %s blocks", len(src), bs, t)
	}
	bb := t.BlockBytes()
	dst := make([]byte, len(src)/bs*bb)
	// Blocks are independent: large tensors are quantized in parallel,
	// a run of whole blocks per goroutine, with the same bytes as one.
	blocks := len(src) / bs
	workers := min(runtime.GOMAXPROCS(0), blocks*bs/quantizeGrain)
	if workers <= 1 {
		q(dst, src)
		return dst, nil
	}
	var wg sync.WaitGroup
	per := (blocks + workers - 1) / workers
	for lo := 0; lo < blocks; lo += per {
		hi := min(lo+per, blocks)
		wg.Go(func() { q(dst[lo*bb:hi*bb], src[lo*bs:hi*bs]) })
	}
	wg.Wait()
	return dst, nil
}

// quantizeGrain is the fewest values a goroutine of Quantize takes.
const quantizeGrain = 1 << 16

// fp32ToFP16 converts a float32 to IEEE binary16 bits exactly as ggml's
// GGML_FP32_TO_FP16 does (round to nearest even through float32
// arithmetic; NaN becomes 0x7e00 with the sign kept).
func fp32ToFP16(f float32) uint16 {
	const scaleToInf = float32(0x1p+112)
	const scaleToZero = float32(0x1p-110)
	abs := math.Float32frombits(math.Float32bits(f) &^ (1 << 31))
	base := float32(float32(abs*scaleToInf) * scaleToZero)
	w := math.Float32bits(f)
	shl1w := w + w
	sign := w & 0x80000000
	bias := shl1w & 0xff000000
	if bias < 0x71000000 {
		bias = 0x71000000
	}
	base = math.Float32frombits((bias>>1)+0x07800000) + base
	bits := math.Float32bits(base)
	expBits := (bits >> 13) & 0x00007c00
	mantBits := bits & 0x00000fff
	nonsign := expBits + mantBits
	if shl1w > 0xff000000 {
		nonsign = 0x7e00
	}
	return uint16(sign>>16) | uint16(nonsign)
}

// putHalf stores f as ggml's fp16 at b[i:] and returns the stored value as
// float32, which later steps of several quantizers read back.
func putHalf(b []byte, i int, f float32) float32 {
	h := fp32ToFP16(f)
	binary.LittleEndian.PutUint16(b[i:], h)
	return fp16(h)
}

// nearestInt rounds to nearest (ties to even) with ggml's bit trick, valid
// for |f| <= 4194303 as in ggml; outside that range it returns the same
// wrong values ggml's does, without panicking.
func nearestInt(f float32) int32 {
	val := float32(f) + 12582912
	i := int32(math.Float32bits(val))
	return (i & 0x007fffff) - 0x00400000
}

// toInt8 converts like C's (int8_t) cast of an in-range float (truncation).
func toInt8(f float32) int32 { return int32(int8(int32(f))) }

func absf(f float32) float32 { return math.Float32frombits(math.Float32bits(f) &^ (1 << 31)) }

func sqrtf(f float32) float32 { return float32(math.Sqrt(float64(f))) }

func roundf(f float32) float32 { return float32(math.Round(float64(f))) }

func clamp(l, lo, hi int32) int32 { return max(lo, min(hi, l)) }

// fmax is C's MAX(a, b) for floats: b only if it is greater.
func fmax(a, b float32) float32 {
	if b > a {
		return b
	}
	return a
}

const groupMaxEps = float32(1e-15)

func quantF32(dst []byte, src []float32) {
	for i, v := range src {
		binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(v))
	}
}

func quantF16(dst []byte, src []float32) {
	for i, v := range src {
		binary.LittleEndian.PutUint16(dst[2*i:], fp32ToFP16(v))
	}
}

func quantBF16(dst []byte, src []float32) {
	for i, v := range src {
		binary.LittleEndian.PutUint16(dst[2*i:], tensor.Float32ToBF16(v))
	}
}

// absMax returns the element of largest magnitude (the first one on ties)
// and its magnitude.
func absMax(x []float32) (maxv, amax float32) {
	for _, v := range x {
		if amax < absf(v) {
			amax, maxv = absf(v), v
		}
	}
	return maxv, amax
}

func minMax(x []float32) (lo, hi float32) {
	lo, hi = math.MaxFloat32, -math.MaxFloat32
	for _, v := range x {
		if v < lo {
			lo = v
		}
		if v > hi {
			hi = v
		}
	}
	return lo, hi
}

func quantQ4_0(dst []byte, src []float32) {
	for i := 0; i < len(src)/32; i++ {
		x, y := src[32*i:32*i+32], dst[18*i:18*i+18]
		maxv, _ := absMax(x)
		d := maxv / -8
		var id float32
		if d != 0 {
			id = 1 / d
		}
		putHalf(y, 0, d)
		for j := range 16 {
			xi0 := min(15, toInt8(float32(x[j]*id)+8.5))
			xi1 := min(15, toInt8(float32(x[16+j]*id)+8.5))
			y[2+j] = uint8(xi0) | uint8(xi1)<<4
		}
	}
}

func quantQ4_1(dst []byte, src []float32) {
	for i := 0; i < len(src)/32; i++ {
		x, y := src[32*i:32*i+32], dst[20*i:20*i+20]
		lo, hi := minMax(x)
		d := (hi - lo) / 15
		var id float32
		if d != 0 {
			id = 1 / d
		}
		putHalf(y, 0, d)
		putHalf(y, 2, lo)
		for j := range 16 {
			xi0 := min(15, toInt8(float32((x[j]-lo)*id)+0.5))
			xi1 := min(15, toInt8(float32((x[16+j]-lo)*id)+0.5))
			y[4+j] = uint8(xi0) | uint8(xi1)<<4
		}
	}
}

func quantQ5_0(dst []byte, src []float32) {
	for i := 0; i < len(src)/32; i++ {
		x, y := src[32*i:32*i+32], dst[22*i:22*i+22]
		maxv, _ := absMax(x)
		d := maxv / -16
		var id float32
		if d != 0 {
			id = 1 / d
		}
		putHalf(y, 0, d)
		var qh uint32
		for j := range 16 {
			xi0 := uint8(min(31, toInt8(float32(x[j]*id)+16.5)))
			xi1 := uint8(min(31, toInt8(float32(x[16+j]*id)+16.5)))
			y[6+j] = xi0&0x0f | (xi1&0x0f)<<4
			qh |= uint32(xi0&0x10) >> 4 << j
			qh |= uint32(xi1&0x10) >> 4 << (j + 16)
		}
		binary.LittleEndian.PutUint32(y[2:], qh)
	}
}

func quantQ5_1(dst []byte, src []float32) {
	for i := 0; i < len(src)/32; i++ {
		x, y := src[32*i:32*i+32], dst[24*i:24*i+24]
		lo, hi := minMax(x)
		d := (hi - lo) / 31
		var id float32
		if d != 0 {
			id = 1 / d
		}
		putHalf(y, 0, d)
		putHalf(y, 2, lo)
		var qh uint32
		for j := range 16 {
			xi0 := uint8(int32(float32((x[j]-lo)*id) + 0.5))
			xi1 := uint8(int32(float32((x[16+j]-lo)*id) + 0.5))
			y[8+j] = xi0&0x0f | (xi1&0x0f)<<4
			qh |= uint32(xi0&0x10) >> 4 << j
			qh |= uint32(xi1&0x10) >> 4 << (j + 16)
		}
		binary.LittleEndian.PutUint32(y[4:], qh)
	}
}

func quantQ8_0(dst []byte, src []float32) {
	for i := 0; i < len(src)/32; i++ {
		x, y := src[32*i:32*i+32], dst[34*i:34*i+34]
		var amax float32
		for _, v := range x {
			amax = fmax(amax, absf(v))
		}
		d := amax / 127
		var id float32
		if d != 0 {
			id = 1 / d
		}
		putHalf(y, 0, d)
		for j := range 32 {
			y[2+j] = byte(int8(int32(roundf(x[j] * id))))
		}
	}
}

// makeQkx2Quants is ggml's make_qkx2_quants: a scale and min for n values
// quantized to [0, nmax], searched over nstep+1 candidate scales minimizing
// the weighted error (absolute if useMAD, else squared). It returns the
// scale and stores -min in theMin.
func makeQkx2Quants(n, nmax int32, x, weights []float32, L, Laux []uint8, theMin *float32, rmin, rdelta float32, nstep int32, useMAD bool) float32 {
	lo, hi := x[0], x[0]
	sumW := weights[0]
	sumX := sumW * x[0]
	for i := int32(1); i < n; i++ {
		if x[i] < lo {
			lo = x[i]
		}
		if x[i] > hi {
			hi = x[i]
		}
		w := weights[i]
		sumW += w
		sumX += float32(w * x[i])
	}
	if lo > 0 {
		lo = 0
	}
	if hi == lo {
		for i := range n {
			L[i] = 0
		}
		*theMin = -lo
		return 0
	}
	iscale := float32(nmax) / (hi - lo)
	scale := 1 / iscale
	var bestError float32
	errOf := func(diff float32) float32 {
		if useMAD {
			return absf(diff)
		}
		return diff * diff
	}
	for i := range n {
		l := nearestInt(iscale * (x[i] - lo))
		L[i] = uint8(clamp(l, 0, nmax))
		diff := float32(float32(scale*float32(L[i]))+lo) - x[i]
		bestError += float32(weights[i] * errOf(diff))
	}
	if nstep < 1 {
		*theMin = -lo
		return scale
	}
	for is := int32(0); is <= nstep; is++ {
		iscale = (float32(rmin+float32(rdelta*float32(is))) + float32(nmax)) / (hi - lo)
		var sumL, sumL2, sumXL float32
		for i := range n {
			l := clamp(nearestInt(iscale*(x[i]-lo)), 0, nmax)
			Laux[i] = uint8(l)
			w := weights[i]
			fl := float32(l)
			sumL += float32(w * fl)
			sumL2 += float32(float32(w*fl) * fl)
			sumXL += float32(float32(w*fl) * x[i])
		}
		D := float32(sumW*sumL2) - float32(sumL*sumL)
		if D > 0 {
			thisScale := (float32(sumW*sumXL) - float32(sumX*sumL)) / D
			thisMin := (float32(sumL2*sumX) - float32(sumL*sumXL)) / D
			if thisMin > 0 {
				thisMin = 0
				thisScale = sumXL / sumL2
			}
			var curError float32
			for i := range n {
				diff := float32(float32(thisScale*float32(Laux[i]))+thisMin) - x[i]
				curError += float32(weights[i] * errOf(diff))
			}
			if curError < bestError {
				copy(L[:n], Laux[:n])
				bestError = curError
				scale = thisScale
				lo = thisMin
			}
		}
	}
	*theMin = -lo
	return scale
}

// makeQ3Quants is ggml's make_q3_quants with do_rmse: signed levels in
// [-nmax, nmax-1], refined by coordinate descent on the x²-weighted error;
// L gets the levels shifted by nmax.
func makeQ3Quants(n, nmax int32, x []float32, L []int8) float32 {
	maxv, amax := absMax(x[:n])
	if amax < groupMaxEps {
		for i := range n {
			L[i] = 0
		}
		return 0
	}
	iscale := float32(-nmax) / maxv
	var sumlx, suml2 float32
	for i := range n {
		l := clamp(nearestInt(iscale*x[i]), -nmax, nmax-1)
		L[i] = int8(l)
		w := float32(x[i] * x[i])
		fl := float32(l)
		sumlx += float32(float32(w*x[i]) * fl)
		suml2 += float32(float32(w*fl) * fl)
	}
	for range 5 {
		nChanged := 0
		for i := range n {
			w := float32(x[i] * x[i])
			li := float32(L[i])
			slx := sumlx - float32(float32(w*x[i])*li)
			if slx > 0 {
				sl2 := suml2 - float32(float32(w*li)*li)
				newL := clamp(nearestInt(float32(x[i]*sl2)/slx), -nmax, nmax-1)
				if newL != int32(L[i]) {
					fn := float32(newL)
					slx += float32(float32(w*x[i]) * fn)
					sl2 += float32(float32(w*fn) * fn)
					if sl2 > 0 && float32(float32(slx*slx)*suml2) > float32(float32(sumlx*sumlx)*sl2) {
						L[i] = int8(newL)
						sumlx, suml2 = slx, sl2
						nChanged++
					}
				}
			}
		}
		if nChanged == 0 {
			break
		}
	}
	for i := range n {
		L[i] += int8(nmax)
	}
	if suml2 > 0 {
		return sumlx / suml2
	}
	return 0
}

// makeQxQuants is ggml's make_qx_quants with rmse_type 1 and no
// importance weights: signed levels in [-nmax, nmax-1] (stored shifted by
// nmax), the best of 19 candidate scales for the x²-weighted error.
func makeQxQuants(n, nmax int32, x []float32, L []int8) float32 {
	maxv, amax := absMax(x[:n])
	if amax < groupMaxEps {
		for i := range n {
			L[i] = 0
		}
		return 0
	}
	sums := func(iscale float32, store bool) (sumlx, suml2 float32) {
		for i := range n {
			l := clamp(nearestInt(iscale*x[i]), -nmax, nmax-1)
			if store {
				L[i] = int8(l + nmax)
			}
			w := float32(x[i] * x[i])
			fl := float32(l)
			sumlx += float32(float32(w*x[i]) * fl)
			suml2 += float32(float32(w*fl) * fl)
		}
		return sumlx, suml2
	}
	sumlx, suml2 := sums(float32(-nmax)/maxv, true)
	var scale float32
	if suml2 != 0 {
		scale = sumlx / suml2
	}
	best := scale * sumlx
	for is := int32(-9); is <= 9; is++ {
		if is == 0 {
			continue
		}
		iscale := -(float32(nmax) + float32(0.1*float32(is))) / maxv
		sumlx, suml2 = sums(iscale, false)
		if suml2 > 0 && float32(sumlx*sumlx) > float32(best*suml2) {
			sums(iscale, true)
			scale = sumlx / suml2
			best = scale * sumlx
		}
	}
	return scale
}

// packQ2 stores 2-bit levels four to a byte, as Q2_K and Q3_K do.
func packQ2(qs []byte, L []uint8) {
	for j := 0; j < 256; j += 128 {
		for l := range 32 {
			qs[j/4+l] = L[j+l] | L[j+l+32]<<2 | L[j+l+64]<<4 | L[j+l+96]<<6
		}
	}
}

func quantQ2K(dst []byte, src []float32) {
	var L [256]uint8
	var Laux [16]uint8
	var weights [16]float32
	var mins, scales [16]float32
	const q4scale = float32(15)
	for i := 0; i < len(src)/256; i++ {
		x, y := src[256*i:256*i+256], dst[84*i:84*i+84]
		sc, qs := y[0:16], y[16:80]
		var maxScale, maxMin float32
		for j := range 16 {
			for l := range 16 {
				weights[l] = absf(x[16*j+l])
			}
			scales[j] = makeQkx2Quants(16, 3, x[16*j:], weights[:], L[16*j:], Laux[:], &mins[j], -0.5, 0.1, 15, true)
			maxScale = fmax(maxScale, scales[j])
			maxMin = fmax(maxMin, mins[j])
		}
		var d, dmin float32
		if maxScale > 0 {
			iscale := q4scale / maxScale
			for j := range 16 {
				sc[j] = uint8(nearestInt(iscale * scales[j]))
			}
			d = putHalf(y, 80, maxScale/q4scale)
		} else {
			clear(sc)
			d = putHalf(y, 80, 0)
		}
		if maxMin > 0 {
			iscale := q4scale / maxMin
			for j := range 16 {
				sc[j] |= uint8(nearestInt(iscale*mins[j]) << 4)
			}
			dmin = putHalf(y, 82, maxMin/q4scale)
		} else {
			dmin = putHalf(y, 82, 0)
		}
		for j := range 16 {
			dj := d * float32(sc[j]&0xf)
			if dj == 0 {
				continue
			}
			dm := dmin * float32(sc[j]>>4)
			for ii := range 16 {
				L[16*j+ii] = uint8(clamp(nearestInt((x[16*j+ii]+dm)/dj), 0, 3))
			}
		}
		packQ2(qs, L[:])
	}
}

func quantQ3K(dst []byte, src []float32) {
	var L [256]int8
	var scales [16]float32
	for i := 0; i < len(src)/256; i++ {
		x, y := src[256*i:256*i+256], dst[110*i:110*i+110]
		hmask, qs, sc := y[0:32], y[32:96], y[96:108]
		var maxScale, amax float32
		for j := range 16 {
			scales[j] = makeQ3Quants(16, 4, x[16*j:], L[16*j:])
			if s := absf(scales[j]); s > amax {
				amax, maxScale = s, scales[j]
			}
		}
		clear(sc)
		var d float32
		if maxScale != 0 {
			iscale := -32 / maxScale
			for j := range 16 {
				l := int32(int8(nearestInt(iscale * scales[j])))
				l = clamp(l, -32, 31) + 32
				if j < 8 {
					sc[j] = uint8(l & 0xf)
				} else {
					sc[j-8] |= uint8((l & 0xf) << 4)
				}
				l >>= 4
				sc[j%4+8] |= uint8(l << (2 * (j / 4)))
			}
			d = putHalf(y, 108, 1/iscale)
		} else {
			d = putHalf(y, 108, 0)
		}
		for j := range 16 {
			var s int32
			if j < 8 {
				s = int32(sc[j] & 0xf)
			} else {
				s = int32(sc[j-8] >> 4)
			}
			s = (s | int32((sc[8+j%4]>>(2*(j/4)))&3)<<4) - 32
			dj := d * float32(s)
			if dj == 0 {
				continue
			}
			for ii := range 16 {
				l := clamp(nearestInt(x[16*j+ii]/dj), -4, 3)
				L[16*j+ii] = int8(l + 4)
			}
		}
		clear(hmask)
		m, hm := 0, uint8(1)
		var U [256]uint8
		for j := range 256 {
			if L[j] > 3 {
				hmask[m] |= hm
				L[j] -= 4
			}
			U[j] = uint8(L[j])
			if m++; m == 32 {
				m, hm = 0, hm<<1
			}
		}
		packQ2(qs, U[:])
	}
}

// kScales quantizes the eight sub-block scales and mins of a Q4_K/Q5_K
// block to 6 bits, packs them as ggml does and stores d and dmin; it
// returns the stored d and dmin.
func kScales(y []byte, scales, mins []float32, maxScale, maxMin float32) (d, dmin float32) {
	var invScale, invMin float32
	if maxScale > 0 {
		invScale = 63 / maxScale
	}
	if maxMin > 0 {
		invMin = 63 / maxMin
	}
	sc := y[4:16]
	for j := range 8 {
		ls := min(63, uint8(nearestInt(invScale*scales[j])))
		lm := min(63, uint8(nearestInt(invMin*mins[j])))
		if j < 4 {
			sc[j] = ls
			sc[j+4] = lm
		} else {
			sc[j+4] = ls&0xf | (lm&0xf)<<4
			sc[j-4] |= (ls >> 4) << 6
			sc[j] |= (lm >> 4) << 6
		}
	}
	d = putHalf(y, 0, maxScale/63)
	dmin = putHalf(y, 2, maxMin/63)
	return d, dmin
}

// kLevels picks the scales and mins of the eight 32-element sub-blocks of
// a Q4_K/Q5_K block (L gets first-pass levels) and returns the largest.
func kLevels(x []float32, L []uint8, scales, mins []float32, nmax int32, rmin float32, nstep int32) (maxScale, maxMin float32) {
	var weights [32]float32
	var Laux [32]uint8
	for j := range 8 {
		xb := x[32*j : 32*j+32]
		var sumX2 float32
		for _, v := range xb {
			sumX2 += float32(v * v)
		}
		avX := sqrtf(sumX2 / 32)
		for l, v := range xb {
			weights[l] = avX + absf(v)
		}
		scales[j] = makeQkx2Quants(32, nmax, xb, weights[:], L[32*j:], Laux[:], &mins[j], rmin, 0.1, nstep, false)
		maxScale = fmax(maxScale, scales[j])
		maxMin = fmax(maxMin, mins[j])
	}
	return maxScale, maxMin
}

// kRequant recomputes the levels of each sub-block from the stored 6-bit
// scales and mins.
func kRequant(x []float32, L []uint8, y []byte, d, dmin float32, nmax int32) {
	for j := range 8 {
		sc, m := scaleMinK4(j, y[4:16])
		dj := d * float32(sc)
		if dj == 0 {
			continue
		}
		dm := dmin * float32(m)
		for ii := range 32 {
			L[32*j+ii] = uint8(clamp(nearestInt((x[32*j+ii]+dm)/dj), 0, nmax))
		}
	}
}

func quantQ4K(dst []byte, src []float32) {
	var L [256]uint8
	var scales, mins [8]float32
	for i := 0; i < len(src)/256; i++ {
		x, y := src[256*i:256*i+256], dst[144*i:144*i+144]
		maxScale, maxMin := kLevels(x, L[:], scales[:], mins[:], 15, -1, 20)
		d, dmin := kScales(y, scales[:], mins[:], maxScale, maxMin)
		kRequant(x, L[:], y, d, dmin, 15)
		q := y[16:144]
		for j := 0; j < 256; j += 64 {
			for l := range 32 {
				q[l] = L[j+l] | L[j+l+32]<<4
			}
			q = q[32:]
		}
	}
}

func quantQ5K(dst []byte, src []float32) {
	var L [256]uint8
	var scales, mins [8]float32
	for i := 0; i < len(src)/256; i++ {
		x, y := src[256*i:256*i+256], dst[176*i:176*i+176]
		maxScale, maxMin := kLevels(x, L[:], scales[:], mins[:], 31, -0.5, 15)
		d, dmin := kScales(y, scales[:], mins[:], maxScale, maxMin)
		kRequant(x, L[:], y, d, dmin, 31)
		qh, ql := y[16:48], y[48:176]
		clear(qh)
		m1, m2 := uint8(1), uint8(2)
		for n := 0; n < 256; n += 64 {
			for j := range 32 {
				l1, l2 := L[n+j], L[n+j+32]
				if l1 > 15 {
					l1 -= 16
					qh[j] |= m1
				}
				if l2 > 15 {
					l2 -= 16
					qh[j] |= m2
				}
				ql[j] = l1 | l2<<4
			}
			m1 <<= 2
			m2 <<= 2
			ql = ql[32:]
		}
	}
}

func quantQ6K(dst []byte, src []float32) {
	var L [256]int8
	var scales [16]float32
	for i := 0; i < len(src)/256; i++ {
		x, y := src[256*i:256*i+256], dst[210*i:210*i+210]
		var maxScale, maxAbsScale float32
		for ib := range 16 {
			s := makeQxQuants(16, 32, x[16*ib:], L[16*ib:])
			scales[ib] = s
			if a := absf(s); a > maxAbsScale {
				maxAbsScale, maxScale = a, s
			}
		}
		if maxAbsScale < groupMaxEps {
			clear(y)
			continue
		}
		iscale := -128 / maxScale
		d := putHalf(y, 208, 1/iscale)
		sc := y[192:208]
		for ib := range 16 {
			sc[ib] = byte(int8(min(127, nearestInt(iscale*scales[ib]))))
		}
		for j := range 16 {
			dj := d * float32(int8(sc[j]))
			if dj == 0 {
				continue
			}
			for ii := range 16 {
				l := clamp(nearestInt(x[16*j+ii]/dj), -32, 31)
				L[16*j+ii] = int8(l + 32)
			}
		}
		ql, qh := y[0:128], y[128:192]
		for j := 0; j < 256; j += 128 {
			for l := range 32 {
				q1 := uint8(L[j+l]) & 0xf
				q2 := uint8(L[j+l+32]) & 0xf
				q3 := uint8(L[j+l+64]) & 0xf
				q4 := uint8(L[j+l+96]) & 0xf
				ql[l] = q1 | q3<<4
				ql[l+32] = q2 | q4<<4
				qh[l] = uint8(L[j+l])>>4 | (uint8(L[j+l+32])>>4)<<2 | (uint8(L[j+l+64])>>4)<<4 | (uint8(L[j+l+96])>>4)<<6
			}
			ql = ql[64:]
			qh = qh[32:]
		}
	}
}

// bestIndexInt8 is ggml's best_index_int8: the index of the codebook value
// nearest to x (val is sorted).
func bestIndexInt8(val []int8, x float32) uint8 {
	n := len(val)
	if x <= float32(val[0]) {
		return 0
	}
	if x >= float32(val[n-1]) {
		return uint8(n - 1)
	}
	ml, mu := 0, n-1
	for mu-ml > 1 {
		mav := (ml + mu) / 2
		if x < float32(val[mav]) {
			mu = mav
		} else {
			ml = mav
		}
	}
	if x-float32(val[mu-1]) < float32(val[mu])-x {
		return uint8(mu - 1)
	}
	return uint8(mu)
}

// iq4Scale is the per-32 scale search of ggml's quantize_row_iq4_nl_impl
// without importance weights: the weighted least-squares scale for the
// codebook levels, improved over 2*ntry+1 trial scales (ntry <= 0: none).
// L gets the levels of the first trial.
func iq4Scale(xb []float32, L []uint8, ntry int32) float32 {
	values := kvaluesIQ4NL[:]
	var weight [32]float32
	for j, v := range xb {
		weight[j] = v * v
	}
	maxv, amax := absMax(xb)
	if amax < groupMaxEps {
		return 0
	}
	v0 := float32(values[0])
	var d float32
	if ntry > 0 {
		d = -maxv / v0
	} else {
		d = maxv / v0
	}
	id := 1 / d
	var sumqx, sumq2 float32
	for j, v := range xb {
		l := bestIndexInt8(values, float32(id*v))
		L[j] = l
		q := float32(values[l])
		w := weight[j]
		sumqx += float32(float32(w*q) * v)
		sumq2 += float32(float32(w*q) * q)
	}
	d = 0
	if sumq2 > 0 {
		d = sumqx / sumq2
	}
	best := d * sumqx
	for itry := -ntry; itry <= ntry; itry++ {
		id = float32(itry+int32(values[0])) / maxv
		sumqx, sumq2 = 0, 0
		for j, v := range xb {
			q := float32(values[bestIndexInt8(values, float32(id*v))])
			w := weight[j]
			sumqx += float32(float32(w*q) * v)
			sumq2 += float32(float32(w*q) * q)
		}
		if sumq2 > 0 && float32(sumqx*sumqx) > float32(best*sumq2) {
			d = sumqx / sumq2
			best = d * sumqx
		}
	}
	return d
}

func packIQ4(q4 []byte, L []uint8) {
	for i := range len(L) / 32 {
		for j := range 16 {
			q4[16*i+j] = L[32*i+j] | L[32*i+16+j]<<4
		}
	}
}

func quantIQ4NL(dst []byte, src []float32) {
	// L persists across blocks: for an all-zero block ggml packs the
	// previous block's indices (d is 0, so they decode to zeros).
	var L [32]uint8
	for i := 0; i < len(src)/32; i++ {
		x, y := src[32*i:32*i+32], dst[18*i:18*i+18]
		d := iq4Scale(x, L[:], -1)
		putHalf(y, 0, d)
		packIQ4(y[2:18], L[:])
	}
}

func quantIQ4XS(dst []byte, src []float32) {
	var L [256]uint8
	var scales [8]float32
	values := kvaluesIQ4NL[:]
	for i := 0; i < len(src)/256; i++ {
		x, y := src[256*i:256*i+256], dst[136*i:136*i+136]
		var maxScale, amaxScale float32
		for ib := range 8 {
			scales[ib] = iq4Scale(x[32*ib:32*ib+32], L[32*ib:], 7)
			if a := absf(scales[ib]); a > amaxScale {
				amaxScale, maxScale = a, scales[ib]
			}
		}
		d := -maxScale / 32
		putHalf(y, 0, d)
		var id float32
		if d != 0 {
			id = 1 / d
		}
		var scalesH uint16
		scalesL := y[4:8]
		for ib := range 8 {
			l := clamp(nearestInt(id*scales[ib]), -32, 31)
			dl := d * float32(l)
			var idl float32
			if dl != 0 {
				idl = 1 / dl
			}
			for j := range 32 {
				L[32*ib+j] = bestIndexInt8(values, float32(idl*x[32*ib+j]))
			}
			l += 32
			lLow, lHigh := uint8(l&0xf), uint16(l>>4)
			if ib%2 == 0 {
				scalesL[ib/2] = lLow
			} else {
				scalesL[ib/2] |= lLow << 4
			}
			scalesH |= lHigh << (2 * (ib % 8))
		}
		binary.LittleEndian.PutUint16(y[2:], scalesH)
		packIQ4(y[8:136], L[:])
	}
}
