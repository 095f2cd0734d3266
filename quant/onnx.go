package quant

import (
	"context"
	"encoding/binary"
	"fmt"
	"github.com/quiverml/quiver/internal/atomicfile"
	"math"
	"os"
	"slices"
	"strconv"

	"github.com/quiverml/quiver/internal/onnxpb"
	"google.golang.org/protobuf/proto"
)

// ModelOptions configures QuantizeModel. The zero value quantizes the
// weights of MatMul and Gemm nodes to int8, symmetric, one scale per output
// channel.
type ModelOptions struct {
	// IncludeConv also quantizes Conv weights (per output channel, axis 0).
	IncludeConv bool
	// Int4MatMul stores the weights of MatMul nodes as 4-bit blocks (see
	// QuantizeInt4) and replaces those nodes by ONNX Runtime's
	// com.microsoft MatMulNBits contrib operator (CPU and CUDA execution
	// providers), adding the com.microsoft opset import when missing. Gemm
	// and Conv weights stay int8. Weights shrink about 6.4x instead of 4x,
	// with a larger error; other runtimes may not have MatMulNBits.
	Int4MatMul bool
	// Int4BlockSize is the number of weights per scale for Int4MatMul,
	// along K; 0 means DefaultInt4BlockSize. ONNX Runtime requires a power
	// of two >= 16. A weight whose K is smaller uses the smallest power of
	// two >= max(K, 16) instead (WeightReport.BlockSize), since MatMulNBits
	// pads every column to whole blocks; a weight that 4-bit blocks would
	// still not shrink (K < 4) is quantized to int8, or left in float32.
	Int4BlockSize int
	// PerTensor uses one scale per weight instead of one per output channel.
	PerTensor bool
	// MinElements leaves weights with fewer values in float32; 0 means no
	// minimum.
	MinElements int
	// AllowOpsetBump lets QuantizeModel raise the default-domain opset of a
	// model older than 13 to 13, which per-channel DequantizeLinear needs.
	// Raising the opset can change the meaning of other operators (Squeeze,
	// Unsqueeze, Split, ReduceSum and Softmax changed at 13), so it is off by
	// default: a model at opset 10-12 is then quantized per tensor instead,
	// and one below 10 is rejected with ErrUnsupported. A bump also raises
	// an IR version below 7 to 7, the first that allows opset 13.
	AllowOpsetBump bool
}

// ModelReport describes what QuantizeModel did.
type ModelReport struct {
	BytesBefore int // serialized model size in
	BytesAfter  int // serialized model size out
	// WeightBytesBefore is the float32 size of the weights that were
	// quantized; WeightBytesAfter their int8 size plus float32 scales (the
	// zero points are 0, DequantizeLinear's default, and are not stored).
	WeightBytesBefore int
	WeightBytesAfter  int
	OpsetBefore       int64 // default-domain opset in
	OpsetAfter        int64 // default-domain opset out (differs only after a bump)
	// PerTensorFallback is set when per-channel was asked for but the opset
	// (10-12, without AllowOpsetBump) only allows per-tensor scales.
	PerTensorFallback bool
	Weights           []WeightReport
	// Skipped lists the weights left in float32, among them those that
	// quantization would not make smaller (a per-channel int8 weight with
	// one value per channel stores a 4-byte scale beside each byte).
	Skipped []SkippedWeight
}

// WeightRatio returns WeightBytesBefore / WeightBytesAfter, or 0 when no
// weight was quantized.
func (r *ModelReport) WeightRatio() float64 {
	if r.WeightBytesAfter == 0 {
		return 0
	}
	return float64(r.WeightBytesBefore) / float64(r.WeightBytesAfter)
}

// WeightReport describes one quantized weight.
type WeightReport struct {
	Name  string   // initializer name (the DequantizeLinear output keeps it)
	Ops   []string // op types of the nodes that use it
	Shape []int64
	Axis  int         // int8 channel axis, or -1 (per tensor, or int4 blocks)
	Bits  int         // 8, or 4 for Int4MatMul blocks
	Error ErrorReport // weight reconstruction error
	// BlockSize is the int4 block size used (Bits 4): ModelOptions'
	// Int4BlockSize, or less for a weight with a smaller K.
	BlockSize int
	// BytesBefore is the weight's float32 size and BytesAfter its
	// quantized size with its scales; BytesAfter < BytesBefore always.
	BytesBefore, BytesAfter int
}

// SkippedWeight names a weight input that was left in float32, and why.
type SkippedWeight struct {
	Name   string
	Reason string
}

type weightUse struct {
	op   string
	axis int
	node *onnxpb.NodeProto
}

// QuantizeModel rewrites an ONNX model so that the weights of MatMul and
// Gemm (and, with IncludeConv, Conv) nodes are stored as int8 with float32
// scales, each followed by a DequantizeLinear node whose output carries the
// weight's original name (the QDQ weight-only format that ONNX Runtime
// runs). Nodes, other initializers, inputs, outputs, metadata, doc strings
// and opset imports are kept as they are; only the top-level graph is
// rewritten.
//
// A weight is quantized when it is a float32 initializer held inside the
// file, is not also a graph input (which would make it overridable), holds
// only finite values and is consumed only as the weight input of supported
// nodes that agree on its channel axis: axis 1 for MatMul's B [K, N] and for
// Gemm's B without transB, axis 0 for Gemm with transB=1 and for Conv.
// Anything else is listed in the report's Skipped. With Int4MatMul, MatMul
// weights become 4-bit blocks behind com.microsoft MatMulNBits nodes
// instead (see ModelOptions).
//
// When no weight qualifies (and the opset is kept) the output is a copy of
// the input bytes. Otherwise the model is re-encoded, which can change the
// encoding (not the meaning) of untouched fields, such as packing repeated
// numbers.
//
// Bytes that are not an ONNX model give an error wrapping ErrFormat. ctx is
// checked before each weight; once it is done QuantizeModel returns its
// error wrapped, with no partial output.
func QuantizeModel(ctx context.Context, model []byte, opts ModelOptions) ([]byte, *ModelReport, error) {
	m := &onnxpb.ModelProto{}
	if err := proto.Unmarshal(model, m); err != nil {
		return nil, nil, fmt.Errorf("%w: not an ONNX model (protobuf decode: %v)", ErrFormat, err)
	}
	g := m.GetGraph()
	if m.GetIrVersion() <= 0 || g == nil {
		return nil, nil, fmt.Errorf("%w: not an ONNX model: ir_version %d, graph present %t; want ir_version >= 1 and a graph",
			ErrFormat, m.GetIrVersion(), g != nil)
	}
	rep := &ModelReport{BytesBefore: len(model)}
	blockSize := opts.Int4BlockSize
	if blockSize == 0 {
		blockSize = DefaultInt4BlockSize
	}
	if opts.Int4MatMul && (blockSize < 16 || blockSize&(blockSize-1) != 0) {
		return nil, nil, fmt.Errorf("%w: int4 block size %d, want a power of two >= 16", ErrUnsupported, blockSize)
	}
	opset := defaultOpset(m)
	if opset == nil {
		return nil, nil, fmt.Errorf("%w: model has no default-domain opset import", ErrFormat)
	}
	rep.OpsetBefore, rep.OpsetAfter = opset.GetVersion(), opset.GetVersion()
	perChannel := !opts.PerTensor
	switch v := opset.GetVersion(); {
	case v >= 13:
	case opts.AllowOpsetBump:
		opset.Version = proto.Int64(13)
		rep.OpsetAfter = 13
		if m.GetIrVersion() < 7 { // opset 13 needs IR version 7
			m.IrVersion = proto.Int64(7)
		}
	case v >= 10:
		if perChannel {
			perChannel = false
			rep.PerTensorFallback = true
		}
	default:
		return nil, nil, fmt.Errorf("%w: default-domain opset %d has no DequantizeLinear; want >= 10 (or set AllowOpsetBump)", ErrUnsupported, v)
	}

	inits := make(map[string]int, len(g.GetInitializer()))
	for i, t := range g.GetInitializer() {
		inits[t.GetName()] = i
	}
	graphInputs := make(map[string]bool)
	for _, in := range g.GetInput() {
		graphInputs[in.GetName()] = true
	}
	names := usedNames(g)

	// Collect how each initializer is consumed.
	uses := make(map[string][]weightUse)
	other := make(map[string]string) // initializer -> first non-weight consumer
	var order []string
	badRank := make(map[string]string) // weight inputs of an unsupported rank
	noteOther := func(name, why string) {
		if _, ok := inits[name]; ok {
			if _, seen := other[name]; !seen {
				other[name] = why
			}
		}
	}
	for _, n := range g.GetNode() {
		axis, wantRank, ok := weightAxis(n, opts.IncludeConv)
		for i, in := range n.GetInput() {
			if i == 1 && ok {
				if _, isInit := inits[in]; isInit {
					t := g.GetInitializer()[inits[in]]
					if (wantRank == 2 && len(t.GetDims()) != 2) || (wantRank == 3 && len(t.GetDims()) < 3) {
						why := fmt.Sprintf("%s weight of rank %d", n.GetOpType(), len(t.GetDims()))
						noteOther(in, why)
						badRank[in] = why
						continue
					}
					if _, seen := uses[in]; !seen {
						order = append(order, in)
					}
					uses[in] = append(uses[in], weightUse{n.GetOpType(), axis, n})
				}
				continue
			}
			noteOther(in, fmt.Sprintf("input %d of %s node %q", i, n.GetOpType(), n.GetName()))
		}
		for _, a := range n.GetAttribute() {
			for _, sub := range append([]*onnxpb.GraphProto{a.GetG()}, a.GetGraphs()...) {
				for name := range subgraphRefs(sub) {
					noteOther(name, fmt.Sprintf("subgraph of %s node %q", n.GetOpType(), n.GetName()))
				}
			}
		}
	}
	for _, out := range g.GetOutput() {
		noteOther(out.GetName(), "graph output")
	}
	for name, why := range other {
		if _, ok := uses[name]; ok {
			rep.Skipped = append(rep.Skipped, SkippedWeight{name, "also used as " + why})
			delete(uses, name)
		}
	}

	for name, why := range badRank {
		if _, ok := uses[name]; !ok && !slices.ContainsFunc(rep.Skipped, func(s SkippedWeight) bool { return s.Name == name }) {
			rep.Skipped = append(rep.Skipped, SkippedWeight{name, why + " is not supported"})
		}
	}

	var dqNodes []*onnxpb.NodeProto
	for _, name := range order {
		u, ok := uses[name]
		if !ok {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, nil, fmt.Errorf("quant: quantizing model: %w", err)
		}
		t := g.GetInitializer()[inits[name]]
		skip := func(why string) { rep.Skipped = append(rep.Skipped, SkippedWeight{name, why}) }
		axis := u[0].axis
		if slices.ContainsFunc(u, func(w weightUse) bool { return w.axis != axis }) {
			skip("used by nodes that disagree on the channel axis")
			continue
		}
		switch {
		case graphInputs[name]:
			skip("is also a graph input, so callers may override it")
			continue
		case t.GetDataType() != int32(onnxpb.TensorProto_FLOAT):
			skip(fmt.Sprintf("element type %s, want FLOAT", onnxpb.TensorProto_DataType(t.GetDataType())))
			continue
		case t.GetDataLocation() == onnxpb.TensorProto_EXTERNAL || len(t.GetExternalData()) > 0:
			skip("stored as external data")
			continue
		case t.GetSegment() != nil:
			skip("stored in segments")
			continue
		}
		x, shape, err := floatData(t)
		if err != nil {
			return nil, nil, err
		}
		if len(x) == 0 || len(x) < opts.MinElements {
			skip(fmt.Sprintf("%d values, below the minimum %d", len(x), max(opts.MinElements, 1)))
			continue
		}
		if i := firstNonFinite(x); i >= 0 {
			skip(fmt.Sprintf("value %d is %v", i, x[i]))
			continue
		}
		ops := make([]string, 0, len(u))
		for _, w := range u {
			if !slices.Contains(ops, w.op) {
				ops = append(ops, w.op)
			}
		}
		// Quantized weights must come out smaller: the size is known from
		// the shape alone, so a weight that would grow is passed over
		// before anything is allocated for it.
		if opts.Int4MatMul && len(ops) == 1 && ops[0] == "MatMul" {
			bs := int4Block(shape[0], blockSize)
			if int4Bytes(shape[0], shape[1], bs) < 4*len(x) {
				wr, nbytes, err := matMulNBits(m, t, x, shape, u, names, bs)
				if err != nil {
					return nil, nil, fmt.Errorf("quantizing weight %q: %w", name, err)
				}
				g.Initializer[inits[name]] = wr.q
				g.Initializer = append(g.Initializer, wr.scales)
				rep.Weights = append(rep.Weights, WeightReport{Name: name, Ops: ops, Shape: slices.Clone(t.GetDims()), Axis: -1, Bits: 4, Error: wr.err,
					BlockSize: bs, BytesBefore: 4 * len(x), BytesAfter: nbytes})
				rep.WeightBytesBefore += 4 * len(x)
				rep.WeightBytesAfter += nbytes
				continue
			}
			// Too few rows for 4-bit blocks to pay off: int8 may still.
		}
		nScales := 1
		if perChannel {
			nScales = shape[axis]
		}
		if after := len(x) + 4*nScales; after >= 4*len(x) {
			skip(fmt.Sprintf("would not shrink: int8 with %d scale(s) takes %d bytes, float32 %d (%d values in %d channels)",
				nScales, after, 4*len(x), len(x), nScales))
			continue
		}
		var scales []float32
		var zps []int8
		q := make([]int8, len(x))
		dq := make([]float32, len(x))
		chAxis := -1
		if perChannel {
			chAxis = axis
			if scales, zps, err = ChannelParams[int8](x, shape, axis, true); err == nil {
				if err = QuantizeAxis(q, x, shape, axis, scales, zps); err == nil {
					err = DequantizeAxis(dq, q, shape, axis, scales, zps)
				}
			}
		} else {
			var s float32
			var z int8
			if s, z, err = TensorParams[int8](x, true); err == nil {
				scales, zps = []float32{s}, []int8{z}
				if err = Quantize(q, x, s, z); err == nil {
					err = Dequantize(dq, q, s, z)
				}
			}
		}
		if err != nil {
			return nil, nil, fmt.Errorf("quantizing weight %q: %w", name, err)
		}
		er, err := Compare(x, dq)
		if err != nil {
			return nil, nil, fmt.Errorf("measuring weight %q: %w", name, err)
		}

		qName := uniqueName(names, name+"_quantized")
		sName := uniqueName(names, name+"_scale")
		paramDims := []int64{int64(len(scales))}
		if !perChannel {
			paramDims = nil
		}
		qt := &onnxpb.TensorProto{Name: proto.String(qName), Dims: t.GetDims(), DataType: dataType(onnxpb.TensorProto_INT8), RawData: int8Bytes(q), DocString: t.DocString}
		st := &onnxpb.TensorProto{Name: proto.String(sName), Dims: paramDims, DataType: dataType(onnxpb.TensorProto_FLOAT), RawData: float32Bytes(scales)}
		g.Initializer[inits[name]] = qt
		g.Initializer = append(g.Initializer, st)
		dqn := &onnxpb.NodeProto{
			Name:   proto.String(uniqueName(names, name+"_DequantizeLinear")),
			OpType: proto.String("DequantizeLinear"),
			Input:  []string{qName, sName}, // symmetric: zero point 0, the default
			Output: []string{name},
		}
		if perChannel {
			dqn.Attribute = []*onnxpb.AttributeProto{intAttribute("axis", int64(axis))}
		}
		dqNodes = append(dqNodes, dqn)
		rep.Weights = append(rep.Weights, WeightReport{Name: name, Ops: ops, Shape: slices.Clone(t.GetDims()), Axis: chAxis, Bits: 8, Error: er,
			BytesBefore: 4 * len(x), BytesAfter: len(q) + 4*len(scales)})
		rep.WeightBytesBefore += 4 * len(x)
		rep.WeightBytesAfter += len(q) + 4*len(scales)
	}
	slices.SortFunc(rep.Skipped, func(a, b SkippedWeight) int { return compareStrings(a.Name, b.Name) })
	if len(rep.Weights) == 0 && rep.OpsetAfter == rep.OpsetBefore {
		// Nothing changed: hand back the input bytes rather than a
		// re-encoding of them.
		rep.BytesAfter = len(model)
		return slices.Clone(model), rep, nil
	}
	g.Node = append(dqNodes, g.Node...)

	out, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding quantized model: %w", err)
	}
	rep.BytesAfter = len(out)
	return out, rep, nil
}

// int4Block returns the block size for a MatMul weight with k rows: bs, or
// the smallest power of two >= max(k, 16) when that is smaller, so that no
// column is padded with more than k zeros.
func int4Block(k, bs int) int {
	p := 16
	for p < k && p < bs {
		p <<= 1
	}
	return min(p, bs)
}

// int4Bytes is the MatMulNBits size of a [k, n] weight in blocks of bs:
// packed nibbles padded to whole blocks plus one float32 scale per block.
func int4Bytes(k, n, bs int) int {
	kb := (k + bs - 1) / bs
	return n*kb*bs/2 + 4*n*kb
}

type int4Weight struct {
	q, scales *onnxpb.TensorProto
	err       ErrorReport
}

// matMulNBits quantizes a MatMul weight x [K, N] to MatMulNBits' layout
// (B as [N, ceil(K/bs), bs/2] packed nibbles, zero-padded along K, and
// N·ceil(K/bs) scales) and rewrites the MatMul nodes in uses to use it.
func matMulNBits(m *onnxpb.ModelProto, t *onnxpb.TensorProto, x []float32, shape []int, uses []weightUse, names map[string]bool, bs int) (int4Weight, int, error) {
	k, n := shape[0], shape[1]
	kb := (k + bs - 1) / bs
	row := kb * bs
	padded := make([]float32, n*row)
	for i := range k {
		for j := range n {
			padded[j*row+i] = x[i*n+j]
		}
	}
	blocks, err := QuantizeInt4(padded, bs)
	if err != nil {
		return int4Weight{}, 0, err
	}
	back := make([]float32, len(padded))
	if err := blocks.Dequantize(back); err != nil {
		return int4Weight{}, 0, err
	}
	dq := make([]float32, len(x))
	for i := range k {
		for j := range n {
			dq[i*n+j] = back[j*row+i]
		}
	}
	er, err := Compare(x, dq)
	if err != nil {
		return int4Weight{}, 0, err
	}
	name := t.GetName()
	qName := uniqueName(names, name+"_q4")
	sName := uniqueName(names, name+"_scales")
	w := int4Weight{
		q:      &onnxpb.TensorProto{Name: proto.String(qName), Dims: []int64{int64(n), int64(kb), int64(bs / 2)}, DataType: dataType(onnxpb.TensorProto_UINT8), RawData: blocks.Data, DocString: t.DocString},
		scales: &onnxpb.TensorProto{Name: proto.String(sName), Dims: []int64{int64(n * kb)}, DataType: dataType(onnxpb.TensorProto_FLOAT), RawData: float32Bytes(blocks.Scales)},
		err:    er,
	}
	for _, u := range uses {
		nd := u.node
		nd.OpType, nd.Domain = proto.String("MatMulNBits"), proto.String("com.microsoft")
		nd.Input = []string{nd.GetInput()[0], qName, sName}
		nd.Attribute = []*onnxpb.AttributeProto{
			intAttribute("K", int64(k)),
			intAttribute("N", int64(n)),
			intAttribute("bits", 4),
			intAttribute("block_size", int64(bs)),
		}
	}
	if !slices.ContainsFunc(m.GetOpsetImport(), func(o *onnxpb.OperatorSetIdProto) bool { return o.GetDomain() == "com.microsoft" }) {
		m.OpsetImport = append(m.OpsetImport, &onnxpb.OperatorSetIdProto{Domain: proto.String("com.microsoft"), Version: proto.Int64(1)})
	}
	return w, len(blocks.Data) + 4*len(blocks.Scales), nil
}

// dataType returns the value of a TensorProto's data_type field for dt.
func dataType(dt onnxpb.TensorProto_DataType) *int32 { return proto.Int32(int32(dt)) }

// intAttribute returns an INT node attribute.
func intAttribute(name string, v int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(v)}
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// QuantizeModelFile reads the ONNX model at src, quantizes it with
// QuantizeModel and writes the result to dst through a temporary file in
// the same folder, synced and renamed, so dst is never left half written.
func QuantizeModelFile(ctx context.Context, src, dst string, opts ModelOptions) (*ModelReport, error) {
	in, err := os.ReadFile(src)
	if err != nil {
		return nil, fmt.Errorf("quant: reading model: %w", err)
	}
	out, rep, err := QuantizeModel(ctx, in, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	if err := atomicfile.WriteFile(dst, out, 0o644); err != nil {
		return nil, fmt.Errorf("quant: writing model: %w", err)
	}
	return rep, nil
}

// weightAxis reports whether input 1 of n is a weight this package can
// quantize, with its output-channel axis and the rank it must have (2, or
// 3 meaning "at least 3").
func weightAxis(n *onnxpb.NodeProto, conv bool) (axis, rank int, ok bool) {
	if n.GetDomain() != "" && n.GetDomain() != "ai.onnx" {
		return 0, 0, false
	}
	switch n.GetOpType() {
	case "MatMul":
		return 1, 2, true
	case "Gemm":
		for _, a := range n.GetAttribute() {
			if a.GetName() == "transB" && a.GetI() != 0 {
				return 0, 2, true
			}
		}
		return 1, 2, true
	case "Conv":
		if conv {
			return 0, 3, true
		}
	}
	return 0, 0, false
}

func defaultOpset(m *onnxpb.ModelProto) *onnxpb.OperatorSetIdProto {
	for _, o := range m.GetOpsetImport() {
		if o.GetDomain() == "" || o.GetDomain() == "ai.onnx" {
			return o
		}
	}
	return nil
}

// usedNames collects every tensor and node name of g (subgraphs included),
// so that new names never collide.
func usedNames(g *onnxpb.GraphProto) map[string]bool {
	names := make(map[string]bool)
	var walk func(g *onnxpb.GraphProto, depth int)
	walk = func(g *onnxpb.GraphProto, depth int) {
		if g == nil || depth > 64 {
			return
		}
		for _, t := range g.GetInitializer() {
			names[t.GetName()] = true
		}
		for _, v := range append(append(slices.Clone(g.GetInput()), g.GetOutput()...), g.GetValueInfo()...) {
			names[v.GetName()] = true
		}
		for _, n := range g.GetNode() {
			names[n.GetName()] = true
			for _, s := range n.GetInput() {
				names[s] = true
			}
			for _, s := range n.GetOutput() {
				names[s] = true
			}
			for _, a := range n.GetAttribute() {
				walk(a.GetG(), depth+1)
				for _, sg := range a.GetGraphs() {
					walk(sg, depth+1)
				}
			}
		}
	}
	walk(g, 0)
	return names
}

// subgraphRefs returns every tensor name read by nodes of g or of its
// nested subgraphs (outer-scope references included).
func subgraphRefs(g *onnxpb.GraphProto) map[string]bool {
	refs := make(map[string]bool)
	var walk func(g *onnxpb.GraphProto, depth int)
	walk = func(g *onnxpb.GraphProto, depth int) {
		if g == nil || depth > 64 {
			return
		}
		for _, n := range g.GetNode() {
			for _, s := range n.GetInput() {
				refs[s] = true
			}
			for _, a := range n.GetAttribute() {
				walk(a.GetG(), depth+1)
				for _, sg := range a.GetGraphs() {
					walk(sg, depth+1)
				}
			}
		}
	}
	walk(g, 0)
	return refs
}

func uniqueName(names map[string]bool, base string) string {
	name := base
	for i := 1; names[name]; i++ {
		name = base + "_" + strconv.Itoa(i)
	}
	names[name] = true
	return name
}

// floatData decodes a FLOAT initializer held in raw_data or float_data.
func floatData(t *onnxpb.TensorProto) ([]float32, []int, error) {
	shape := make([]int, len(t.GetDims()))
	n := 1
	for i, d := range t.GetDims() {
		if d < 0 || d > math.MaxInt32 {
			return nil, nil, fmt.Errorf("%w: initializer %q has dimension %d, want >= 0", ErrFormat, t.GetName(), d)
		}
		shape[i] = int(d)
		if n != 0 && int(d) > math.MaxInt/(4*n) {
			return nil, nil, fmt.Errorf("%w: initializer %q shape %v overflows", ErrFormat, t.GetName(), t.GetDims())
		}
		n *= int(d)
	}
	if raw := t.GetRawData(); len(raw) > 0 || len(t.GetFloatData()) == 0 {
		if len(raw) != 4*n {
			return nil, nil, fmt.Errorf("%w: initializer %q has %d raw bytes, want %d for shape %v", ErrFormat, t.GetName(), len(raw), 4*n, t.GetDims())
		}
		x := make([]float32, n)
		for i := range x {
			x[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		return x, shape, nil
	}
	fd := t.GetFloatData()
	if len(fd) != n {
		return nil, nil, fmt.Errorf("%w: initializer %q has %d float_data values, want %d for shape %v", ErrFormat, t.GetName(), len(fd), n, t.GetDims())
	}
	return slices.Clone(fd), shape, nil
}

func int8Bytes(q []int8) []byte {
	b := make([]byte, len(q))
	for i, v := range q {
		b[i] = byte(v)
	}
	return b
}

func float32Bytes(x []float32) []byte {
	b := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}
