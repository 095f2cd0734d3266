// Package onnxpb holds the ONNX protobuf types, generated from ONNX 1.12's
// onnx.proto (see generate.go), and builds small ONNX models with them for
// examples and tests that should not depend on files on disk.
package onnxpb

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"

	"google.golang.org/protobuf/proto"
)

// MLPSpec describes a multi-layer perceptron: Gemm layers with ReLU between
// them, input "x" of shape [batch, Sizes[0]], output "y" of shape
// [batch, Sizes[len-1]]. Weights are drawn from a PCG seeded with Seed, so
// the same spec always gives the same bytes.
type MLPSpec struct {
	Sizes    []int
	Seed     uint64
	Name     string            // graph name; default "mlp"
	Metadata map[string]string // custom metadata
	Version  int64             // model_version
}

// MLP returns the serialized ONNX model for spec.
func MLP(spec MLPSpec) ([]byte, error) {
	if len(spec.Sizes) < 2 {
		return nil, fmt.Errorf("onnxpb: an MLP needs at least 2 sizes, got %v", spec.Sizes)
	}
	for _, s := range spec.Sizes {
		if s <= 0 {
			return nil, fmt.Errorf("onnxpb: layer sizes must be positive, got %v", spec.Sizes)
		}
	}
	if spec.Name == "" {
		spec.Name = "mlp"
	}
	rng := rand.New(rand.NewPCG(spec.Seed, spec.Seed^0x9e3779b97f4a7c15))
	g := &GraphProto{Name: proto.String(spec.Name)}
	prev := "x"
	for i := 0; i+1 < len(spec.Sizes); i++ {
		in, out := spec.Sizes[i], spec.Sizes[i+1]
		w := make([]float32, in*out)
		scale := 1 / math.Sqrt(float64(in))
		for k := range w {
			w[k] = float32(rng.NormFloat64() * scale)
		}
		b := make([]float32, out)
		for k := range b {
			b[k] = float32(rng.NormFloat64() * 0.1)
		}
		wn, bn := fmt.Sprintf("w%d", i), fmt.Sprintf("b%d", i)
		g.Initializer = append(g.Initializer, Float32Tensor(wn, []int64{int64(in), int64(out)}, w), Float32Tensor(bn, []int64{int64(out)}, b))
		last := i+2 == len(spec.Sizes)
		gemmOut := fmt.Sprintf("h%d_pre", i)
		if last {
			gemmOut = "y"
		}
		g.Node = append(g.Node, &NodeProto{OpType: proto.String("Gemm"), Input: []string{prev, wn, bn}, Output: []string{gemmOut}})
		if !last {
			h := fmt.Sprintf("h%d", i)
			g.Node = append(g.Node, &NodeProto{OpType: proto.String("Relu"), Input: []string{gemmOut}, Output: []string{h}})
			prev = h
		}
	}
	g.Input = []*ValueInfoProto{TensorInfo("x", TensorProto_FLOAT, "batch", int64(spec.Sizes[0]))}
	g.Output = []*ValueInfoProto{TensorInfo("y", TensorProto_FLOAT, "batch", int64(spec.Sizes[len(spec.Sizes)-1]))}
	m := Model(g, spec.Version, spec.Metadata)
	return proto.Marshal(m)
}

// Model wraps a graph in a ModelProto at IR version 8, opset 17.
func Model(g *GraphProto, version int64, metadata map[string]string) *ModelProto {
	m := &ModelProto{
		IrVersion:       proto.Int64(8),
		ProducerName:    proto.String("quiver"),
		ProducerVersion: proto.String("1"),
		ModelVersion:    proto.Int64(version),
		Graph:           g,
		OpsetImport:     []*OperatorSetIdProto{{Version: proto.Int64(17)}},
	}
	for _, k := range sortedKeys(metadata) {
		m.MetadataProps = append(m.MetadataProps, &StringStringEntryProto{Key: proto.String(k), Value: proto.String(metadata[k])})
	}
	return m
}

// Float32Tensor returns an initializer holding vals as raw little-endian data.
func Float32Tensor(name string, dims []int64, vals []float32) *TensorProto {
	raw := make([]byte, 4*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	return &TensorProto{Name: proto.String(name), Dims: dims, DataType: proto.Int32(int32(TensorProto_FLOAT)), RawData: raw}
}

// TensorInfo describes a tensor input or output; a string dim is symbolic,
// an int64 dim is fixed.
func TensorInfo(name string, elem TensorProto_DataType, dims ...any) *ValueInfoProto {
	shape := &TensorShapeProto{}
	for _, d := range dims {
		switch d := d.(type) {
		case string:
			shape.Dim = append(shape.Dim, &TensorShapeProto_Dimension{Value: &TensorShapeProto_Dimension_DimParam{DimParam: d}})
		case int64:
			shape.Dim = append(shape.Dim, &TensorShapeProto_Dimension{Value: &TensorShapeProto_Dimension_DimValue{DimValue: d}})
		case int:
			shape.Dim = append(shape.Dim, &TensorShapeProto_Dimension{Value: &TensorShapeProto_Dimension_DimValue{DimValue: int64(d)}})
		}
	}
	return &ValueInfoProto{
		Name: proto.String(name),
		Type: &TypeProto{Value: &TypeProto_TensorType{TensorType: &TypeProto_Tensor{ElemType: proto.Int32(int32(elem)), Shape: shape}}},
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}
