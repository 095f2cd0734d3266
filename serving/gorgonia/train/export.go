package train

import (
	"fmt"
	"io"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/quiverml/quiver/internal/atomicfile"
	"github.com/quiverml/quiver/internal/onnxpb"
	"github.com/quiverml/quiver/serving"
)

// The ONNX files Export writes: IR version 8, the default operator set at
// version 13, producer "quiver", the model version of Options.Version,
// metadata as Info.Custom. Inputs and outputs are as Info lists them, float32
// with a first axis named "batch". Each dense layer is a Gemm node (input
// times weight, plus bias) with a Relu or Tanh after every hidden layer;
// then, by output, a Sigmoid (binary), a Softmax on axis 1 (multiclass) or
// nothing (regression). A two-tower model ends in Mul, a MatMul by a
// Constant column of ones (the row sums) and Sigmoid. These operators run on
// ONNX Runtime and on serving/gorgonia alike. Weights are initializers named
// "layer<i>.weight" and "layer<i>.bias" ("user.layer<i>.weight", ... for the
// towers).
const (
	exportIRVersion = 8
	exportOpset     = 13
)

// Export writes the model Predict serves now, with the metadata of the step
// that made it, as an ONNX file that ONNX Runtime (serving/onnx) serves with
// the same outputs. It does not wait for an Update in progress. After Close
// it returns serving.ErrClosed.
func (t *Trainer) Export(w io.Writer) error {
	if t.closed.Load() {
		return serving.ErrClosed
	}
	b, err := proto.Marshal(t.exportProto(t.snap.Load()))
	if err != nil {
		return fmt.Errorf("train: export: %w", err)
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("train: export: %w", err)
	}
	return nil
}

// ExportFile writes Export's ONNX file to path atomically: a reader of path
// sees the old file or the new one, never a partial file. A new file gets
// mode 0644 before the umask.
func (t *Trainer) ExportFile(path string) error {
	return atomicfile.Write(path, 0o644, t.Export)
}

func (t *Trainer) exportProto(s *snapshot) *onnxpb.ModelProto {
	a := t.a
	if a.kind == kindONNX {
		return a.onnx.exportProto(s, t.opts.Version, t.custom(s))
	}
	g := &onnxpb.GraphProto{Name: proto.String(t.opts.Name)}
	node := func(op, name string, inputs []string, output string, attrs ...*onnxpb.AttributeProto) {
		g.Node = append(g.Node, &onnxpb.NodeProto{OpType: proto.String(op), Name: proto.String(name),
			Input: inputs, Output: []string{output}, Attribute: attrs})
	}
	for ti, tw := range a.towers {
		prefix := ""
		if a.kind == kindTwoTower {
			prefix = tw.input + "."
		}
		g.Input = append(g.Input, onnxpb.TensorInfo(tw.input, onnxpb.TensorProto_FLOAT, "batch", int64(tw.sizes[0])))
		h := tw.input
		for li, l := range tw.layers {
			wn, bn := fmt.Sprintf("%slayer%d.weight", prefix, li), fmt.Sprintf("%slayer%d.bias", prefix, li)
			g.Initializer = append(g.Initializer,
				onnxpb.Float32Tensor(wn, []int64{int64(l.in), int64(l.out)}, s.params[l.w]),
				onnxpb.Float32Tensor(bn, []int64{int64(l.out)}, s.params[l.b]))
			out := fmt.Sprintf("%slayer%d", prefix, li)
			last := li+1 == len(tw.layers)
			switch {
			case last && a.kind == kindTwoTower:
				out = []string{"user_embedding", "item_embedding"}[ti]
			case last && a.output == Regression:
				out = "y"
			case last:
				out = "logits"
			}
			node("Gemm", out, []string{h, wn, bn}, out)
			h = out
			if !last {
				op := "Relu"
				if a.act == Tanh {
					op = "Tanh"
				}
				node(op, h+"."+op, []string{h}, h+"."+op)
				h += "." + op
			}
		}
	}
	y := func(width int) *onnxpb.ValueInfoProto {
		return onnxpb.TensorInfo("y", onnxpb.TensorProto_FLOAT, "batch", int64(width))
	}
	switch {
	case a.kind == kindTwoTower:
		// The row sums of the product are a MatMul by a column of ones, a
		// Constant node rather than an initializer so that importing the
		// file (ONNXModel) does not make it a parameter.
		d := int64(a.embedding())
		ones := make([]float32, d)
		for i := range ones {
			ones[i] = 1
		}
		node("Mul", "product", []string{"user_embedding", "item_embedding"}, "product")
		node("Constant", "ones", nil, "ones", &onnxpb.AttributeProto{Name: proto.String("value"),
			Type: onnxpb.AttributeProto_TENSOR.Enum(), T: onnxpb.Float32Tensor("", []int64{d, 1}, ones)})
		node("MatMul", "logits", []string{"product", "ones"}, "logits")
		node("Sigmoid", "y", []string{"logits"}, "y")
		g.Output = append(g.Output, y(1),
			onnxpb.TensorInfo("user_embedding", onnxpb.TensorProto_FLOAT, "batch", d),
			onnxpb.TensorInfo("item_embedding", onnxpb.TensorProto_FLOAT, "batch", d))
	case a.output == Binary:
		node("Sigmoid", "y", []string{"logits"}, "y")
		g.Output = append(g.Output, y(1))
	case a.output == Multiclass:
		node("Softmax", "y", []string{"logits"}, "y",
			&onnxpb.AttributeProto{Name: proto.String("axis"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(1)})
		g.Output = append(g.Output, y(a.outputs()))
	default:
		g.Output = append(g.Output, y(a.outputs()))
	}

	m := &onnxpb.ModelProto{
		IrVersion:       proto.Int64(exportIRVersion),
		ProducerName:    proto.String("quiver"),
		ProducerVersion: proto.String("1"),
		ModelVersion:    proto.Int64(t.opts.Version),
		Graph:           g,
		OpsetImport:     []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(exportOpset)}},
	}
	m.MetadataProps = metadataProps(t.custom(s))
	return m
}

// metadataProps returns m as ONNX metadata, sorted by key.
func metadataProps(m map[string]string) []*onnxpb.StringStringEntryProto {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	props := make([]*onnxpb.StringStringEntryProto, len(keys))
	for i, k := range keys {
		props[i] = &onnxpb.StringStringEntryProto{Key: proto.String(k), Value: proto.String(m[k])}
	}
	return props
}
