package gorgonia

import (
	"fmt"
	"math"
	"sync"

	"gonum.org/v1/gonum/blas"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// window is the geometry of a convolution or pooling over one or two
// spatial axes; one axis is computed as two with a height of 1.
type window struct {
	n, c, h, w     int // input batch, channels, spatial size
	kh, kw         int // kernel
	sh, sw         int // strides
	dh, dw         int // dilations
	pt, pl, pb, pr int // pads: top, left, bottom, right
	oh, ow         int // output spatial size
}

// windowSpec is what a Conv or pooling node says about its window, for
// one or two spatial axes, before the input's size is known.
type windowSpec struct {
	kernel    []int
	strides   []int
	dilations []int
	pads      []int // begins then ends
	autoPad   string
	ceil      bool
}

// geometry resolves the spec against an input of shape [N C spatial...].
func (s *windowSpec) geometry(x tensor.Shape) (window, error) {
	nd := x.Dims() - 2
	if nd != len(s.kernel) {
		return window{}, fmt.Errorf("input has %d spatial axes (shape %v), the kernel %d", nd, []int(x), len(s.kernel))
	}
	w := window{n: x[0], c: x[1], h: 1, w: x[2], kh: 1, kw: s.kernel[nd-1], sh: 1, sw: s.strides[nd-1], dh: 1, dw: s.dilations[nd-1]}
	in := []int{x[2]}
	if nd == 2 {
		w.h, w.w = x[2], x[3]
		w.kh, w.sh, w.dh = s.kernel[0], s.strides[0], s.dilations[0]
		in = []int{x[2], x[3]}
	}
	begin, end := make([]int, nd), make([]int, nd)
	out := make([]int, nd)
	for i := 0; i < nd; i++ {
		k := (s.kernel[i]-1)*s.dilations[i] + 1
		st := s.strides[i]
		switch s.autoPad {
		case "SAME_UPPER", "SAME_LOWER":
			out[i] = (in[i] + st - 1) / st
			total := max(0, (out[i]-1)*st+k-in[i])
			begin[i] = total / 2
			if s.autoPad == "SAME_LOWER" {
				begin[i] = total - total/2
			}
			end[i] = total - begin[i]
			continue
		case "VALID":
		default:
			begin[i], end[i] = s.pads[i], s.pads[nd+i]
		}
		span := in[i] + begin[i] + end[i] - k
		if span < 0 {
			return window{}, fmt.Errorf("kernel %v (dilated to %d) is larger than the padded input along spatial axis %d (%d + pads %d+%d)",
				s.kernel, k, i, in[i], begin[i], end[i])
		}
		out[i] = span/st + 1
		if s.ceil && span%st != 0 {
			out[i]++
			// A window may not start in the end padding.
			if (out[i]-1)*st >= in[i]+begin[i] {
				out[i]--
			}
		}
	}
	w.pl, w.pr, w.ow = begin[nd-1], end[nd-1], out[nd-1]
	w.oh = 1
	if nd == 2 {
		w.pt, w.pb, w.oh = begin[0], end[0], out[0]
	}
	return w, nil
}

func (w *window) outShape(channels int, rank int) tensor.Shape {
	if rank == 3 {
		return tensor.Shape{w.n, channels, w.ow}
	}
	return tensor.Shape{w.n, channels, w.oh, w.ow}
}

// convOp is ONNX's Conv over one or two spatial axes: pads, strides,
// dilations and groups, computed as im2col and a matrix product per group.
type convOp struct {
	sig
	win     window
	m       int // output channels
	group   int
	hasBias bool
	scratch sync.Pool
}

func newConvOp(dt tensor.Dtype, x, wt tensor.Shape, bias tensor.Shape, spec *windowSpec, group int) (*convOp, error) {
	if x.Dims() != wt.Dims() {
		return nil, fmt.Errorf("input %v and weights %v differ in rank", []int(x), []int(wt))
	}
	win, err := spec.geometry(x)
	if err != nil {
		return nil, err
	}
	m := wt[0]
	if group < 1 || win.c%group != 0 || m%group != 0 {
		return nil, fmt.Errorf("group %d does not divide input channels %d and output channels %d", group, win.c, m)
	}
	if wt[1] != win.c/group {
		return nil, fmt.Errorf("weights %v have %d input channels per group, the input %d channels in %d groups", []int(wt), wt[1], win.c, group)
	}
	kh, kw := 1, wt[wt.Dims()-1]
	if wt.Dims() == 4 {
		kh = wt[2]
	}
	if kh != win.kh || kw != win.kw {
		return nil, fmt.Errorf("weights %v disagree with kernel_shape %v", []int(wt), spec.kernel)
	}
	in := []tensor.Shape{x.Clone(), wt.Clone()}
	op := &convOp{win: win, m: m, group: group}
	if bias != nil {
		if bias.Dims() != 1 || bias[0] != m {
			return nil, fmt.Errorf("bias has shape %v, want [%d]", []int(bias), m)
		}
		op.hasBias = true
		in = append(in, bias.Clone())
	}
	op.sig = newSig("Conv", fmt.Sprintf("%+v,g=%d", win, group), dt, win.outShape(m, x.Dims()), in...)
	return op, nil
}

func (op *convOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(op.result(), in...) }

func (op *convOp) UsePreallocDo(out G.Value, in ...G.Value) (G.Value, error) {
	if err := op.check(out, in); err != nil {
		return nil, err
	}
	o, x, w := out.(*tensor.Dense), in[0].(*tensor.Dense), in[1].(*tensor.Dense)
	var b *tensor.Dense
	if op.hasBias {
		b = in[2].(*tensor.Dense)
	}
	if op.dtype == tensor.Float32 {
		var bias []float32
		if b != nil {
			bias = b.Float32s()
		}
		conv(op, o.Float32s(), x.Float32s(), w.Float32s(), bias, sgemm)
	} else {
		var bias []float64
		if b != nil {
			bias = b.Float64s()
		}
		conv(op, o.Float64s(), x.Float64s(), w.Float64s(), bias, blasImpl.Dgemm)
	}
	return out, nil
}

// direct reports whether the input itself is the im2col matrix: a 1x1
// kernel with unit strides and no padding.
func (w *window) direct() bool {
	return w.kh == 1 && w.kw == 1 && w.sh == 1 && w.sw == 1 && w.pt == 0 && w.pl == 0 && w.pb == 0 && w.pr == 0
}

func conv[T floats](op *convOp, out, x, wt, bias []T, gemm gemmFunc[T]) {
	w := &op.win
	cg, mg := w.c/op.group, op.m/op.group
	kk := cg * w.kh * w.kw
	hw, ohw := w.h*w.w, w.oh*w.ow
	var col []T
	if !w.direct() {
		p, _ := op.scratch.Get().(*[]T)
		if p == nil || cap(*p) < kk*ohw {
			s := make([]T, kk*ohw)
			p = &s
		}
		defer op.scratch.Put(p)
		col = (*p)[:kk*ohw]
	}
	for n := 0; n < w.n; n++ {
		for g := 0; g < op.group; g++ {
			src := x[(n*w.c+g*cg)*hw:][:cg*hw]
			if col != nil {
				im2col(w, col, src, cg)
			} else {
				col = src
			}
			dst := out[(n*op.m+g*mg)*ohw:][:mg*ohw]
			beta := T(0)
			if bias != nil {
				for m := 0; m < mg; m++ {
					v := bias[g*mg+m]
					row := dst[m*ohw : (m+1)*ohw]
					for i := range row {
						row[i] = v
					}
				}
				beta = 1
			}
			gemm(blas.NoTrans, blas.NoTrans, mg, ohw, kk, 1, wt[g*mg*kk:][:mg*kk], kk, col, ohw, beta, dst, ohw)
			if w.direct() {
				col = nil
			}
		}
	}
}

// im2col lays out, for each output position, the input values under each
// kernel tap: row (c, ki, kj), column (oh, ow); taps in the padding are 0.
func im2col[T floats](w *window, col, x []T, channels int) {
	ohw := w.oh * w.ow
	r := 0
	for c := 0; c < channels; c++ {
		plane := x[c*w.h*w.w:][:w.h*w.w]
		for ki := 0; ki < w.kh; ki++ {
			for kj := 0; kj < w.kw; kj++ {
				row := col[r*ohw : (r+1)*ohw]
				r++
				for oh := 0; oh < w.oh; oh++ {
					ih := oh*w.sh - w.pt + ki*w.dh
					dst := row[oh*w.ow : (oh+1)*w.ow]
					if ih < 0 || ih >= w.h {
						clear(dst)
						continue
					}
					src := plane[ih*w.w : (ih+1)*w.w]
					iw := -w.pl + kj*w.dw
					for ow := range dst {
						if iw >= 0 && iw < w.w {
							dst[ow] = src[iw]
						} else {
							dst[ow] = 0
						}
						iw += w.sw
					}
				}
			}
		}
	}
}

// poolOp is MaxPool or AveragePool over one or two spatial axes.
type poolOp struct {
	sig
	win        window
	max        bool
	includePad bool
}

func newPoolOp(dt tensor.Dtype, x tensor.Shape, spec *windowSpec, isMax, includePad bool) (*poolOp, error) {
	win, err := spec.geometry(x)
	if err != nil {
		return nil, err
	}
	name := "AveragePool"
	if isMax {
		name = "MaxPool"
	}
	return &poolOp{sig: newSig(name, fmt.Sprintf("%+v,%t", win, includePad), dt, win.outShape(win.c, x.Dims()), x.Clone()),
		win: win, max: isMax, includePad: includePad}, nil
}

func (op *poolOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(op.result(), in...) }

func (op *poolOp) UsePreallocDo(out G.Value, in ...G.Value) (G.Value, error) {
	if err := op.check(out, in); err != nil {
		return nil, err
	}
	o, x := out.(*tensor.Dense), in[0].(*tensor.Dense)
	if op.dtype == tensor.Float32 {
		pool(op, o.Float32s(), x.Float32s())
	} else {
		pool(op, o.Float64s(), x.Float64s())
	}
	return out, nil
}

func pool[T floats](op *poolOp, out, x []T) {
	w := &op.win
	hw, ohw := w.h*w.w, w.oh*w.ow
	for p := 0; p < w.n*w.c; p++ {
		plane := x[p*hw : (p+1)*hw]
		dst := out[p*ohw : (p+1)*ohw]
		for oh := 0; oh < w.oh; oh++ {
			for ow := 0; ow < w.ow; ow++ {
				hs, ws := oh*w.sh-w.pt, ow*w.sw-w.pl
				if op.max {
					m := T(math.Inf(-1))
					k0, k1 := taps(hs, w.dh, w.kh, w.h)
					j0, j1 := taps(ws, w.dw, w.kw, w.w)
					for ki := k0; ki < k1; ki++ {
						row := plane[(hs+ki*w.dh)*w.w:]
						for kj := j0; kj < j1; kj++ {
							if v := row[ws+kj*w.dw]; v > m {
								m = v
							}
						}
					}
					dst[oh*w.ow+ow] = m
					continue
				}
				// The window counted with padding stops at the end padding;
				// the summed window stops at the input.
				he, we := min(hs+w.kh, w.h+w.pb), min(ws+w.kw, w.w+w.pr)
				padded := (he - hs) * (we - ws)
				hs, ws = max(hs, 0), max(ws, 0)
				he, we = min(he, w.h), min(we, w.w)
				var s float64
				for ih := hs; ih < he; ih++ {
					for iw := ws; iw < we; iw++ {
						s += float64(plane[ih*w.w+iw])
					}
				}
				count := (he - hs) * (we - ws)
				if op.includePad {
					count = padded
				}
				dst[oh*w.ow+ow] = T(s / float64(count))
			}
		}
	}
}

// taps returns the range [k0, k1) of kernel taps k, of a window starting
// at start with the given dilation, that fall inside [0, n).
func taps(start, dilation, k, n int) (k0, k1 int) {
	if start < 0 {
		k0 = (-start + dilation - 1) / dilation
	}
	// start + (k1-1)*dilation <= n-1
	if start > n-1 {
		return 0, 0
	}
	k1 = min(k, (n-1-start)/dilation+1)
	return min(k0, k1), k1
}

// globalAvgPoolOp averages each channel over all its spatial axes.
type globalAvgPoolOp struct{ sig }

func newGlobalAvgPoolOp(dt tensor.Dtype, x tensor.Shape) (*globalAvgPoolOp, error) {
	if x.Dims() < 3 {
		return nil, fmt.Errorf("input has shape %v, want [N C spatial...]", []int(x))
	}
	out := x.Clone()
	for i := 2; i < len(out); i++ {
		out[i] = 1
	}
	return &globalAvgPoolOp{sig: newSig("GlobalAveragePool", "", dt, out, x.Clone())}, nil
}

func (op *globalAvgPoolOp) Do(in ...G.Value) (G.Value, error) {
	return op.UsePreallocDo(op.result(), in...)
}

func (op *globalAvgPoolOp) UsePreallocDo(out G.Value, in ...G.Value) (G.Value, error) {
	if err := op.check(out, in); err != nil {
		return nil, err
	}
	o, x := out.(*tensor.Dense), in[0].(*tensor.Dense)
	inner := size(op.in[0][2:])
	if op.dtype == tensor.Float32 {
		meanRows(o.Float32s(), x.Float32s(), inner)
	} else {
		meanRows(o.Float64s(), x.Float64s(), inner)
	}
	return out, nil
}

func meanRows[T floats](out, x []T, inner int) {
	for i := range out {
		var s float64
		for _, v := range x[i*inner : (i+1)*inner] {
			s += float64(v)
		}
		out[i] = T(s / float64(inner))
	}
}

// batchNormOp is BatchNormalization at inference: each channel (axis 1)
// is normalised with its running mean and variance, then scaled and
// shifted.
type batchNormOp struct {
	sig
	eps float64
}

func newBatchNormOp(dt tensor.Dtype, x tensor.Shape, params []tensor.Shape, eps float64) (*batchNormOp, error) {
	if x.Dims() < 2 {
		return nil, fmt.Errorf("input has shape %v, want [N C ...]", []int(x))
	}
	in := []tensor.Shape{x.Clone()}
	for i, p := range params {
		if p.Dims() != 1 || p[0] != x[1] {
			return nil, fmt.Errorf("%s has shape %v, want [%d] (the input's channels)", bnParams[i], []int(p), x[1])
		}
		in = append(in, p.Clone())
	}
	return &batchNormOp{sig: newSig("BatchNormalization", fmt.Sprint(eps), dt, x.Clone(), in...), eps: eps}, nil
}

var bnParams = [...]string{"scale", "B", "input_mean", "input_var"}

func (op *batchNormOp) Do(in ...G.Value) (G.Value, error) {
	return op.UsePreallocDo(op.result(), in...)
}

func (op *batchNormOp) UsePreallocDo(out G.Value, in ...G.Value) (G.Value, error) {
	if err := op.check(out, in); err != nil {
		return nil, err
	}
	x := op.in[0]
	inner := size(x[2:])
	d := func(i int) *tensor.Dense { return in[i].(*tensor.Dense) }
	if op.dtype == tensor.Float32 {
		batchNorm(out.(*tensor.Dense).Float32s(), d(0).Float32s(), d(1).Float32s(), d(2).Float32s(), d(3).Float32s(), d(4).Float32s(), x[0], x[1], inner, op.eps)
	} else {
		batchNorm(out.(*tensor.Dense).Float64s(), d(0).Float64s(), d(1).Float64s(), d(2).Float64s(), d(3).Float64s(), d(4).Float64s(), x[0], x[1], inner, op.eps)
	}
	return out, nil
}

func batchNorm[T floats](out, x, scale, bias, mean, variance []T, n, c, inner int, eps float64) {
	for ch := 0; ch < c; ch++ {
		a := float64(scale[ch]) / math.Sqrt(float64(variance[ch])+eps)
		b := float64(bias[ch]) - float64(mean[ch])*a
		for i := 0; i < n; i++ {
			off := (i*c + ch) * inner
			src, dst := x[off:off+inner], out[off:off+inner]
			for k, v := range src {
				dst[k] = T(float64(v)*a + b)
			}
		}
	}
}
