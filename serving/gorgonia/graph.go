package gorgonia

import (
	"fmt"
	"sort"

	"github.com/quiverml/quiver/internal/onnxpb"
	"github.com/quiverml/quiver/serving"
	"google.golang.org/protobuf/proto"
	"gorgonia.org/tensor"
)

// Opsets of the default ONNX domain this engine runs.
const (
	MinOpset = 7
	MaxOpset = 23
)

// Graph is an ONNX model parsed for this engine: its signature, its
// initializers decoded to tensors, and its nodes checked against the
// operators the engine supports. Parse makes one; Build turns it into a
// gorgonia expression graph for concrete input shapes, as many times as
// needed. A Graph is read-only after Parse and safe for concurrent Builds,
// but the parameter tensors it shares with every build are not guarded:
// whoever updates them in place (a trainer's solver) must not build or run
// the same Graph elsewhere meanwhile.
type Graph struct {
	info   serving.Info // signature and metadata; Name is left empty
	opset  int64
	inits  map[string]*tensor.Dense // initializers, by name
	order  []string                 // initializer names in file order
	consts map[string]*tensor.Dense // initializers and Constant outputs
	dtypes map[string]tensor.Dtype  // every value's element type
	nodes  []*gnode
	// unranked marks outputs declared without a shape, whose shape is
	// whatever the graph computes.
	unranked map[string]bool
}

// gnode is one ONNX node, with its attributes already parsed into build.
type gnode struct {
	name    string // display name: the node's name, or #index
	op      string
	inputs  []string
	outputs []string
	build   buildFunc
}

// Parse decodes ONNX model bytes and checks them: the opset, every
// node's operator, attributes, inputs and element types, and every
// initializer's data. Anything this engine does not run is an
// *UnsupportedError (matching ErrUnsupported and serving.ErrModel); bytes
// that are not a well-formed model are an error matching serving.ErrModel.
// data is not retained. Memory use is bounded by len(data): no tensor may
// declare more elements than its data holds.
func Parse(data []byte) (*Graph, error) {
	if len(data) == 0 {
		return nil, modelError("empty model data")
	}
	var mp onnxpb.ModelProto
	if err := proto.Unmarshal(data, &mp); err != nil {
		return nil, modelError("not an ONNX model: %v", err)
	}
	return parseModel(&mp)
}

// ParseModel checks a decoded ONNX model as Parse does. The Graph copies
// what it keeps; mp may be changed afterwards.
func ParseModel(mp *onnxpb.ModelProto) (*Graph, error) {
	if mp == nil {
		return nil, modelError("nil model")
	}
	return parseModel(mp)
}

func parseModel(mp *onnxpb.ModelProto) (*Graph, error) {
	gp := mp.GetGraph()
	if gp == nil {
		return nil, modelError("the model has no graph")
	}
	g := &Graph{
		inits:    map[string]*tensor.Dense{},
		consts:   map[string]*tensor.Dense{},
		dtypes:   map[string]tensor.Dtype{},
		unranked: map[string]bool{},
	}
	g.opset = -1
	for _, o := range mp.GetOpsetImport() {
		if d := o.GetDomain(); d == "" || d == "ai.onnx" {
			g.opset = o.GetVersion()
		}
	}
	if g.opset < 0 && len(gp.GetNode()) > 0 {
		return nil, modelError("the model imports no opset of the default ONNX domain")
	}
	if g.opset >= 0 && (g.opset < MinOpset || g.opset > MaxOpset) {
		return nil, &UnsupportedError{What: fmt.Sprintf("opset %d not supported; supported: %d to %d", g.opset, MinOpset, MaxOpset)}
	}
	g.info = serving.Info{
		Producer:    mp.GetProducerName(),
		GraphName:   gp.GetName(),
		Domain:      mp.GetDomain(),
		Description: mp.GetDocString(),
		Version:     mp.GetModelVersion(),
		Custom:      map[string]string{},
		Provider:    "CPU",
		Requested:   "CPU",
	}
	for _, p := range mp.GetMetadataProps() {
		g.info.Custom[p.GetKey()] = p.GetValue()
	}
	if len(gp.GetSparseInitializer()) > 0 {
		return nil, &UnsupportedError{What: "sparse initializers not supported"}
	}
	for _, tp := range gp.GetInitializer() {
		name := tp.GetName()
		if name == "" {
			return nil, modelError("an initializer has no name")
		}
		if _, dup := g.inits[name]; dup {
			return nil, modelError("initializer %q is defined twice", name)
		}
		t, err := decodeTensor(tp)
		if err != nil {
			if _, ok := dtypeOf(serving.ElementType(tp.GetDataType())); !ok {
				return nil, &UnsupportedError{What: fmt.Sprintf("initializer %q: %v", name, err)}
			}
			return nil, modelError("initializer %q: %v", name, err)
		}
		g.inits[name], g.consts[name], g.dtypes[name] = t, t, t.Dtype()
		g.order = append(g.order, name)
	}
	defined := map[string]bool{}
	for name := range g.inits {
		defined[name] = true
	}
	for _, vi := range gp.GetInput() {
		if _, isInit := g.inits[vi.GetName()]; isInit {
			continue // an initializer listed as an input (IR < 4): a constant
		}
		io, dt, err := valueInfo(vi, "input")
		if err != nil {
			return nil, err
		}
		if defined[io.Name] {
			return nil, modelError("input %q is defined twice", io.Name)
		}
		g.info.Inputs = append(g.info.Inputs, io)
		g.dtypes[io.Name] = dt
		defined[io.Name] = true
	}
	for i, np := range gp.GetNode() {
		n, err := g.parseNode(i, np)
		if err != nil {
			return nil, err
		}
		for _, in := range n.inputs {
			if in != "" && !defined[in] {
				return nil, modelError("node %q (%s): input %q is not defined before the node (nodes must be sorted)", n.name, n.op, in)
			}
		}
		for _, out := range n.outputs {
			if out == "" {
				continue
			}
			if defined[out] {
				return nil, modelError("node %q (%s): output %q is already defined", n.name, n.op, out)
			}
			defined[out] = true
		}
		if n.build != nil {
			g.nodes = append(g.nodes, n)
		}
	}
	for _, vi := range gp.GetOutput() {
		io, dt, err := valueInfo(vi, "output")
		if err != nil {
			return nil, err
		}
		if !defined[io.Name] {
			return nil, modelError("output %q is computed by no node", io.Name)
		}
		if vi.GetType().GetTensorType().GetShape() == nil {
			g.unranked[io.Name] = true
		}
		if got := g.dtypes[io.Name]; got != dt {
			return nil, modelError("output %q is declared %s but computes %s", io.Name, elementOf(dt), elementOf(got))
		}
		g.info.Outputs = append(g.info.Outputs, io)
	}
	if len(g.info.Outputs) == 0 {
		return nil, modelError("the model has no outputs")
	}
	return g, nil
}

// valueInfo reads a graph input or output: a tensor of an element type
// the engine computes with. Axes without a fixed size are -1, named or not.
func valueInfo(vi *onnxpb.ValueInfoProto, what string) (serving.IOInfo, tensor.Dtype, error) {
	io := serving.IOInfo{Name: vi.GetName(), Kind: serving.KindTensor}
	if io.Name == "" {
		return io, tensor.Dtype{}, modelError("an %s has no name", what)
	}
	tt := vi.GetType().GetTensorType()
	if tt == nil {
		return io, tensor.Dtype{}, &UnsupportedError{What: fmt.Sprintf("%s %q is not a tensor; supported: tensors", what, io.Name)}
	}
	io.ElementType = serving.ElementType(tt.GetElemType())
	dt, ok := dtypeOf(io.ElementType)
	if !ok {
		return io, dt, &UnsupportedError{What: fmt.Sprintf("%s %q: element type %s not supported; supported: %s", what, io.Name, io.ElementType, supportedTypes)}
	}
	io.Shape = []int64{}
	for k, d := range tt.GetShape().GetDim() {
		v := d.GetDimValue()
		if _, fixed := d.GetValue().(*onnxpb.TensorShapeProto_Dimension_DimValue); !fixed || v < 0 {
			v = -1
		}
		if v > 1<<40 {
			return io, dt, modelError("%s %q: axis %d has size %d", what, io.Name, k, v)
		}
		io.Shape = append(io.Shape, v)
		if p := d.GetDimParam(); p != "" {
			if io.DimNames == nil {
				io.DimNames = make([]string, len(tt.GetShape().GetDim()))
			}
			io.DimNames[k] = p
		}
	}
	return io, dt, nil
}

// Info describes the model's inputs, outputs and metadata. Name is empty,
// and Batchable is false: serving a model decides both.
func (g *Graph) Info() serving.Info { return g.info.Clone() }

// Opset is the model's opset of the default ONNX domain.
func (g *Graph) Opset() int64 { return g.opset }

// ParamNames lists the float initializers in file order: the parameters
// Build returns as nodes, and that a trainer learns.
func (g *Graph) ParamNames() []string {
	var names []string
	for _, n := range g.order {
		if isFloat(g.inits[n].Dtype()) {
			names = append(names, n)
		}
	}
	return names
}

// Initializer returns the tensor of the initializer named name, shared
// with every build of the graph (see Graph), or nil.
func (g *Graph) Initializer(name string) *tensor.Dense { return g.inits[name] }

// opsUsed lists the distinct operators of the graph, sorted.
func (g *Graph) opsUsed() []string {
	seen := map[string]bool{}
	for _, n := range g.nodes {
		seen[n.op] = true
	}
	ops := make([]string, 0, len(seen))
	for op := range seen {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	return ops
}
