package train

import (
	"context"
	"fmt"
	"math/bits"
	"runtime"
	"slices"
	"sync"

	"google.golang.org/protobuf/proto"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/quiverml/quiver/internal/onnxpb"
	"github.com/quiverml/quiver/serving"
	gg "github.com/quiverml/quiver/serving/gorgonia"
)

// ONNXModel is a spec whose architecture and initial parameters are an
// ONNX model's, run on gorgonia by serving/gorgonia: it fine-tunes a model
// that Export wrote, or one made elsewhere from the operators that engine
// differentiates (Gemm, MatMul, Add, Relu, Sigmoid, Softmax, Gather, ...).
// Every float32 initializer the Target output depends on is a parameter;
// L2 applies to those of two or more axes (weights, not biases).
//
// The model's inputs must have a dynamic first axis (the batch) and fixed
// other axes, of element type float32, int64 or int32; its rows must be
// independent (serving/gorgonia finds it batchable). Predict returns every
// output of the model, Update trains on Target: Output says what Target
// holds and which loss applies, with targets as for an MLP of that Output.
// When Target is computed by a Sigmoid (Binary) or a Softmax over its last
// axis (Multiclass), the loss reads that node's input, the logits, in the
// stable form the other specs use; otherwise it reads the probabilities,
// with log(p + 1e-7) in place of log p.
//
// Export writes the model with its trained parameters in place of the
// initial ones, at its own opset; the signature and nodes are unchanged.
type ONNXModel struct {
	// Model holds the ONNX file's bytes.
	Model []byte
	// Target names the output the loss reads. Default: the model's first
	// output.
	Target string
	// Output says what Target holds: probabilities of shape [batch] or
	// [batch, 1] (Binary), probabilities per class [batch, classes]
	// (Multiclass), or values [batch] or [batch, n] (Regression).
	Output Output
}

const kindONNX kind = 4

// imported is an ONNXModel's part of an arch.
type imported struct {
	raw        []byte
	mp         *onnxpb.ModelProto
	serve      *gg.Graph // the model as it is, for Predict
	train      *gg.Graph // the model up to what the loss reads; its parameter tensors are the trainer's master parameters
	target     string
	head       string // the training graph's output the loss reads: target, or the logits before target's Sigmoid or Softmax
	fromLogits bool
	width      int      // values per row of head
	names      []string // trained parameters, in arch.params order
	info       serving.Info
	pool       forwardPool
	// compiling serialises newForward: gorgonia's NewTapeMachine writes to
	// every tensor bound in the graph, and the served Graph's tensors are
	// shared by all its builds.
	compiling sync.Mutex
}

func (s ONNXModel) arch() (a *arch, err error) {
	defer func() {
		// gorgonia reports some graph errors by panicking.
		if r := recover(); r != nil {
			a, err = nil, fmt.Errorf("%w: onnx model: building its graph: %v", ErrSpec, r)
		}
	}()
	if s.Output > Regression {
		return nil, fmt.Errorf("%w: onnx model: got output %v, want binary, multiclass or regression", ErrSpec, s.Output)
	}
	bad := func(format string, args ...any) (*arch, error) {
		return nil, fmt.Errorf("%w: onnx model: "+format, append([]any{ErrSpec}, args...)...)
	}
	serve, err := gg.Parse(s.Model)
	if err != nil {
		return nil, fmt.Errorf("%w: onnx model: %w", ErrSpec, err)
	}
	im := &imported{raw: slices.Clone(s.Model), serve: serve, target: s.Target, mp: &onnxpb.ModelProto{}}
	if err := proto.Unmarshal(s.Model, im.mp); err != nil {
		return nil, fmt.Errorf("%w: onnx model: %w", ErrSpec, err)
	}
	// serving/gorgonia decides whether requests may be merged; a model
	// whose rows are not independent cannot be trained on a batch's mean.
	m, err := gg.LoadBytes(context.Background(), s.Model, gg.Options{})
	if err != nil {
		return nil, fmt.Errorf("%w: onnx model: %w", ErrSpec, err)
	}
	im.info = m.Info()
	m.Close()
	if !im.info.Batchable {
		return bad("rows must be independent along a batch axis: %s", im.info.BatchReason)
	}
	for _, in := range im.info.Inputs {
		for k, d := range in.Shape[1:] {
			if d < 0 {
				return bad("input %q: axis %d is dynamic; only the first (batch) axis may be", in.Name, k+1)
			}
		}
		switch in.ElementType {
		case serving.Float32, serving.Int64, serving.Int32:
		default:
			return bad("input %q is %s; supported: float32, int64, int32", in.Name, in.ElementType)
		}
	}
	if im.target == "" {
		im.target = im.info.Outputs[0].Name
	}
	if _, ok := outputInfo(im.info, im.target); !ok {
		return bad("no output %q", im.target)
	}
	tp := proto.Clone(im.mp).(*onnxpb.ModelProto)
	im.head = im.target
	if n := producer(tp.GetGraph(), im.target); n != nil && len(n.GetInput()) == 1 {
		switch {
		case s.Output == Binary && n.GetOpType() == "Sigmoid":
			im.head, im.fromLogits = n.GetInput()[0], true
		case s.Output == Multiclass && n.GetOpType() == "Softmax" && softmaxOverLast(n):
			im.head, im.fromLogits = n.GetInput()[0], true
		}
	}
	// The training graph computes the head only: its only output, declared
	// without a shape (whatever the graph computes).
	tp.Graph.Output = []*onnxpb.ValueInfoProto{{Name: proto.String(im.head), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
		TensorType: &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(int32(onnxpb.TensorProto_FLOAT))}}}}}
	if im.train, err = gg.ParseModel(tp); err != nil {
		return bad("%q (what the loss reads) is not a float32 tensor the engine computes: %w", im.head, err)
	}

	// A one-row build finds the parameters, the head's width, and that
	// the head differentiates.
	eg := G.NewGraph()
	probe := &graph{}
	head, params, err := im.buildHeadFor(eg, probe, 1)
	if err != nil {
		return bad("%w", err)
	}
	s1 := head.Shape()
	switch {
	case len(s1) == 1 && s1[0] == 1:
		im.width = 1
	case len(s1) == 2 && s1[0] == 1:
		im.width = s1[1]
	default:
		return bad("%q has shape %v for one row, want [rows] or [rows, n]", im.head, []int(s1))
	}
	switch {
	case s.Output == Binary && im.width != 1:
		return bad("a binary output needs one value per row; %q has %d", im.head, im.width)
	case s.Output == Multiclass && im.width < 2:
		return bad("a multiclass output needs a [rows, classes] matrix of at least 2 classes; %q has shape %v", im.head, []int(s1))
	}
	if len(params) == 0 {
		return bad("%q depends on no float32 initializer: nothing to train", im.target)
	}
	a = &arch{kind: kindONNX, output: s.Output, onnx: im}
	total := 0
	for _, p := range params {
		if p.Dtype() != tensor.Float32 {
			return bad("parameter %q is %v; supported: float32", p.Name(), p.Dtype())
		}
		dims := []int(p.Shape())
		a.params = append(a.params, paramShape{dims: slices.Clone(dims), weight: len(dims) >= 2})
		im.names = append(im.names, p.Name())
		total += a.params[len(a.params)-1].size()
	}
	if total > maxParams {
		return bad("more than %d parameters", maxParams)
	}
	sum, err := G.Sum(head)
	if err != nil {
		return bad("%w", err)
	}
	if _, err := G.Grad(sum, params...); err != nil {
		return bad("%q does not differentiate with respect to its parameters: %w", im.head, err)
	}
	return a, nil
}

func outputInfo(info serving.Info, name string) (serving.IOInfo, bool) {
	for _, o := range info.Outputs {
		if o.Name == name {
			return o, true
		}
	}
	return serving.IOInfo{}, false
}

// producer returns the node computing value name.
func producer(g *onnxpb.GraphProto, name string) *onnxpb.NodeProto {
	for _, n := range g.GetNode() {
		if slices.Contains(n.GetOutput(), name) {
			return n
		}
	}
	return nil
}

// softmaxOverLast reports whether a Softmax node normalises the last axis
// of a matrix: axis 1 or -1, or no axis (the default is 1 before opset 13,
// -1 from it; both are the last axis of a matrix, which the caller checks).
func softmaxOverLast(n *onnxpb.NodeProto) bool {
	for _, at := range n.GetAttribute() {
		if at.GetName() == "axis" {
			return at.GetI() == 1 || at.GetI() == -1
		}
	}
	return true
}

// buildHead adds the training graph's forward pass for rows rows to g,
// with gr's input tensors bound to its inputs, and returns the node the
// loss reads and the parameter nodes in arch order.
func (im *imported) buildHead(g *G.ExprGraph, gr *graph, rows int) (*G.Node, G.Nodes, error) {
	head, params, err := im.buildHeadFor(g, gr, rows)
	if err != nil {
		return nil, nil, err
	}
	if len(params) != len(im.names) {
		return nil, nil, fmt.Errorf("train: the model's graph has %d parameters, want %d", len(params), len(im.names))
	}
	return head, params, nil
}

func (im *imported) buildHeadFor(g *G.ExprGraph, gr *graph, rows int) (*G.Node, G.Nodes, error) {
	inputs, tens, err := inputNodes(g, im.info.Inputs, rows)
	if err != nil {
		return nil, nil, err
	}
	gr.inputs = tens
	built, err := im.train.Build(g, inputs)
	if err != nil {
		return nil, nil, err
	}
	return built.Outputs[im.head], built.Params, nil
}

// inputNodes makes a node for each model input, of rows rows, bound to a
// tensor the caller fills before each run.
func inputNodes(g *G.ExprGraph, ios []serving.IOInfo, rows int) (map[string]*G.Node, []*tensor.Dense, error) {
	nodes := make(map[string]*G.Node, len(ios))
	var tens []*tensor.Dense
	for _, io := range ios {
		shape := make([]int, len(io.Shape))
		shape[0] = rows
		for k, d := range io.Shape[1:] {
			shape[k+1] = int(d)
		}
		var dt tensor.Dtype
		switch io.ElementType {
		case serving.Float32:
			dt = tensor.Float32
		case serving.Int64:
			dt = tensor.Int64
		case serving.Int32:
			dt = tensor.Int32
		default:
			return nil, nil, fmt.Errorf("train: input %q: element type %s not supported", io.Name, io.ElementType)
		}
		t := tensor.New(tensor.Of(dt), tensor.WithShape(shape...))
		tens = append(tens, t)
		nodes[io.Name] = G.NewTensor(g, dt, len(shape), G.WithShape(shape...), G.WithName(io.Name), G.WithValue(t))
	}
	return nodes, tens, nil
}

// masters returns the training graph's parameter tensors, which every
// training graph built from it reads: the trainer's master parameters.
func (im *imported) masters() [][]float32 {
	ps := make([][]float32, len(im.names))
	for i, n := range im.names {
		// Float32s, not Data: a scalar initializer's Data is a float32,
		// its backing a slice of one.
		ps[i] = im.train.Initializer(n).Float32s()
	}
	return ps
}

// forward is a compiled forward pass of the served model for a number of
// rows, run by one Predict at a time.
type forward struct {
	vm     G.VM
	inputs []*tensor.Dense
	params []*G.Node  // the trained parameters' nodes, in arch order
	outs   []*G.Value // per model output, read after a run
	shapes [][]int    // per model output, its shape for this many rows
}

// forwardPool keeps the idle forward passes of each capacity.
type forwardPool struct {
	mu     sync.Mutex
	idle   map[int][]*forward
	closed bool
}

// close releases the idle forward passes; those in use are released when
// they come back.
func (p *forwardPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, fs := range p.idle {
		for _, f := range fs {
			f.vm.Close()
		}
	}
	p.idle = nil
}

func (p *forwardPool) get(im *imported, rows int) (*forward, error) {
	p.mu.Lock()
	if fs := p.idle[rows]; len(fs) > 0 {
		f := fs[len(fs)-1]
		p.idle[rows] = fs[:len(fs)-1]
		p.mu.Unlock()
		return f, nil
	}
	p.mu.Unlock()
	return im.newForward(rows)
}

func (p *forwardPool) put(rows int, f *forward) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.idle == nil {
		p.idle = map[int][]*forward{}
	}
	if p.closed || len(p.idle[rows]) >= runtime.GOMAXPROCS(0) {
		f.vm.Close()
		return
	}
	p.idle[rows] = append(p.idle[rows], f)
}

func (im *imported) newForward(rows int) (f *forward, err error) {
	im.compiling.Lock()
	defer im.compiling.Unlock()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("train: building the forward pass: %v", r)
		}
	}()
	g := G.NewGraph()
	inputs, tens, err := inputNodes(g, im.info.Inputs, rows)
	if err != nil {
		return nil, err
	}
	built, err := im.serve.Build(g, inputs)
	if err != nil {
		return nil, err
	}
	f = &forward{inputs: tens}
	byName := map[string]*G.Node{}
	for _, p := range built.Params {
		byName[p.Name()] = p
	}
	for _, n := range im.names {
		p := byName[n]
		if p == nil {
			return nil, fmt.Errorf("train: parameter %q is not in the served graph", n)
		}
		f.params = append(f.params, p)
	}
	for _, o := range im.info.Outputs {
		n := built.Outputs[o.Name]
		s := []int(n.Shape())
		if len(s) == 0 || s[0] != rows {
			return nil, fmt.Errorf("train: output %q has shape %v for %d rows, want a first axis of %d", o.Name, s, rows, rows)
		}
		v := new(G.Value)
		G.Read(n, v)
		f.outs, f.shapes = append(f.outs, v), append(f.shapes, s)
	}
	f.vm = G.NewTapeMachine(g)
	return f, nil
}

// predict runs the served model with the snapshot's parameters, in parts
// of at most chunk rows.
func (im *imported) predict(s *snapshot, inputs map[string]serving.Tensor, rows, chunk int) (map[string]serving.Value, error) {
	var data []any     // per output, the rows computed so far
	var shapes [][]int // per output, its shape for the last part
	for off := 0; off == 0 || off < rows; off += chunk {
		n := min(chunk, rows-off)
		part := make(map[string]any, len(inputs))
		for _, io := range im.info.Inputs {
			t := inputs[io.Name]
			w := 1
			for _, d := range t.Shape[1:] {
				w *= int(d)
			}
			part[io.Name] = sliceRows(t.Data, off*w, (off+n)*w)
		}
		outs, sh, err := im.run(s, part, n)
		if err != nil {
			return nil, err
		}
		if data == nil {
			data = outs
		} else {
			for i := range data {
				data[i] = appendValues(data[i], outs[i])
			}
		}
		shapes = sh
	}
	out := make(map[string]serving.Value, len(data))
	for i, o := range im.info.Outputs {
		shape := make([]int64, len(shapes[i]))
		shape[0] = int64(rows)
		for k, d := range shapes[i][1:] {
			shape[k+1] = int64(d)
		}
		out[o.Name] = serving.TensorValue(serving.Tensor{Shape: shape, Data: data[i]})
	}
	return out, nil
}

// run runs the served model on rows rows (at most a part's) and returns a
// copy of each output's rows and its shape.
func (im *imported) run(s *snapshot, inputs map[string]any, rows int) (data []any, shapes [][]int, err error) {
	c := 1 << bits.Len(uint(max(rows, 1)-1))
	f, err := im.pool.get(im, c)
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("train: running the model: %v", r)
		}
		f.vm.Reset()
		if err == nil {
			im.pool.put(c, f)
		} else {
			f.vm.Close()
		}
	}()
	for i, p := range f.params {
		if err := G.Let(p, s.tens[i]); err != nil {
			return nil, nil, err
		}
	}
	for i, io := range im.info.Inputs {
		fillInput(f.inputs[i], inputs[io.Name])
	}
	if err := f.vm.RunAll(); err != nil {
		return nil, nil, err
	}
	for i, o := range im.info.Outputs {
		per := 1
		for _, d := range f.shapes[i][1:] {
			per *= d
		}
		d, err := firstRows((*f.outs[i]).Data(), rows*per)
		if err != nil {
			return nil, nil, fmt.Errorf("train: output %q: %w", o.Name, err)
		}
		data = append(data, d)
		shapes = append(shapes, f.shapes[i])
	}
	return data, shapes, nil
}

// sliceRows returns data[from:to] of a tensor's data slice.
func sliceRows(data any, from, to int) any {
	switch d := data.(type) {
	case []float32:
		return d[from:to]
	case []int64:
		return d[from:to]
	case []int32:
		return d[from:to]
	}
	return data
}

// appendValues appends b to a, two data slices of the same type.
func appendValues(a, b any) any {
	switch a := a.(type) {
	case []float32:
		return append(a, b.([]float32)...)
	case []float64:
		return append(a, b.([]float64)...)
	case []int64:
		return append(a, b.([]int64)...)
	case []int32:
		return append(a, b.([]int32)...)
	case []bool:
		return append(a, b.([]bool)...)
	}
	return a
}

// fillInput copies a batch's data into a graph's input tensor and zeroes
// the padding rows after it.
func fillInput(dst *tensor.Dense, src any) {
	switch d := dst.Data().(type) {
	case []float32:
		clear(d[copy(d, src.([]float32)):])
	case []int64:
		clear(d[copy(d, src.([]int64)):])
	case []int32:
		clear(d[copy(d, src.([]int32)):])
	}
}

// firstRows copies the first n values of an output.
func firstRows(data any, n int) (any, error) {
	switch d := data.(type) {
	case []float32:
		return slices.Clone(d[:n]), nil
	case []float64:
		return slices.Clone(d[:n]), nil
	case []int64:
		return slices.Clone(d[:n]), nil
	case []int32:
		return slices.Clone(d[:n]), nil
	case []bool:
		return slices.Clone(d[:n]), nil
	}
	return nil, fmt.Errorf("element type %T not supported", data)
}

// exportProto returns the model with the snapshot's parameters in place of
// its initializers, and the trainer's metadata.
func (im *imported) exportProto(s *snapshot, version int64, custom map[string]string) *onnxpb.ModelProto {
	m := proto.Clone(im.mp).(*onnxpb.ModelProto)
	idx := make(map[string]int, len(im.names))
	for i, n := range im.names {
		idx[n] = i
	}
	for k, tp := range m.GetGraph().GetInitializer() {
		if i, ok := idx[tp.GetName()]; ok {
			m.Graph.Initializer[k] = onnxpb.Float32Tensor(tp.GetName(), tp.GetDims(), s.params[i])
		}
	}
	m.ProducerName, m.ProducerVersion, m.ModelVersion = proto.String("quiver"), proto.String("1"), proto.Int64(version)
	m.MetadataProps = metadataProps(custom)
	return m
}
