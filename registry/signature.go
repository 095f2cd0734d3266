package registry

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/quiverml/quiver/internal/onnxpb"
	"github.com/quiverml/quiver/serving"
)

// maxValueInfoSize bounds one graph input or output description read from
// an ONNX file; real ones are a few hundred bytes.
const maxValueInfoSize = 16 << 20

// Field numbers from onnx.proto (ONNX 1.12).
const (
	fieldModelIRVersion     = 1 // ModelProto.ir_version
	fieldModelGraph         = 7 // ModelProto.graph
	fieldGraphInitializer   = 5 // GraphProto.initializer
	fieldGraphInput         = 11
	fieldGraphOutput        = 12
	fieldGraphSparseInit    = 15 // GraphProto.sparse_initializer
	fieldTensorName         = 8  // TensorProto.name
	fieldSparseTensorValues = 1  // SparseTensorProto.values
)

// SignatureFromONNX reads the signature of the ONNX model in data: the
// graph's inputs, leaving out those that are initializers (weights with a
// default value, which ONNX Runtime does not list as inputs either), and its
// outputs, in file order. Each tensor's element type is spelled as
// serving.ElementType.String() spells it ("float32", "int64"...) and its
// shape has -1 for every dynamic axis, so the result equals SignatureOf of
// the model once loaded; a tensor whose shape the file leaves out has a nil
// Shape, and non-tensor values (sequences, maps) have only a Name.
//
// Only the graph's inputs and outputs are decoded; weights and nodes are
// skipped without being copied. Bytes that are not an ONNX model give an
// error wrapping ErrBadInput; SignatureFromONNX never panics.
func SignatureFromONNX(data []byte) (Signature, error) {
	return readSignature(bytes.NewReader(data), int64(len(data)))
}

// SignatureFromONNXFile reads the signature of the ONNX model file at path,
// like SignatureFromONNX, streaming the file: memory use does not grow with
// the size of the weights.
func SignatureFromONNXFile(path string) (Signature, error) {
	info, err := readONNXInfoFile(path)
	if err != nil {
		return Signature{}, err
	}
	return SignatureOf(info), nil
}

func readSignature(r io.Reader, size int64) (Signature, error) {
	info, err := readONNXInfo(r, size)
	if err != nil {
		return Signature{}, err
	}
	return SignatureOf(info), nil
}

func readONNXInfoFile(path string) (serving.Info, error) {
	f, err := os.Open(path)
	if err != nil {
		return serving.Info{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return serving.Info{}, err
	}
	if !st.Mode().IsRegular() {
		return serving.Info{}, fmt.Errorf("%w: %s is not a regular file", ErrBadInput, path)
	}
	info, err := readONNXInfo(f, st.Size())
	if err != nil {
		return serving.Info{}, fmt.Errorf("%s: %w", path, err)
	}
	return info, nil
}

// String returns the signature as "(x float32[-1 16], ids int64[-1]) ->
// (y float32[-1 4])"; an unrecorded element type or shape is left out.
func (s Signature) String() string {
	list := func(specs []TensorSpec) string {
		parts := make([]string, len(specs))
		for i, t := range specs {
			parts[i] = t.String()
		}
		return "(" + strings.Join(parts, ", ") + ")"
	}
	return list(s.Inputs) + " -> " + list(s.Outputs)
}

// String returns the spec as "x float32[-1 16]".
func (t TensorSpec) String() string {
	s := t.Name
	if t.ElementType != "" {
		s += " " + t.ElementType
	}
	if t.Shape != nil {
		s += fmt.Sprint(t.Shape)
	}
	return s
}

func cloneSignature(s Signature) Signature {
	return Signature{Inputs: cloneSpecs(s.Inputs), Outputs: cloneSpecs(s.Outputs)}
}

// readONNXInfo reads the inputs and outputs of the ONNX model of size bytes
// in r, as a loaded model would describe them.
func readONNXInfo(r io.Reader, size int64) (serving.Info, error) {
	p := &pbReader{r: bufio.NewReaderSize(r, int(min(size+16, 32<<10)))}
	var (
		irVersion      uint64
		graphs         int
		inputs, output []*onnxpb.ValueInfoProto
		inits          = map[string]bool{}
	)
	tensorName := func(end int64) error {
		return p.fields(end, func(num protowire.Number, typ protowire.Type, end int64) error {
			if num != fieldTensorName || typ != protowire.BytesType {
				return p.skip(typ, end)
			}
			b, err := p.bytes(end, maxValueInfoSize, "initializer name")
			if err == nil {
				inits[string(b)] = true
			}
			return err
		})
	}
	graph := func(end int64) error {
		return p.fields(end, func(num protowire.Number, typ protowire.Type, end int64) error {
			if typ != protowire.BytesType {
				return p.skip(typ, end)
			}
			switch num {
			case fieldGraphInput, fieldGraphOutput:
				kind := "input"
				if num == fieldGraphOutput {
					kind = "output"
				}
				b, err := p.bytes(end, maxValueInfoSize, "graph "+kind)
				if err != nil {
					return err
				}
				vi := &onnxpb.ValueInfoProto{}
				if err := proto.Unmarshal(b, vi); err != nil {
					return fmt.Errorf("graph %s %d at byte %d: %v", kind, len(inputs)+len(output), p.off, err)
				}
				if num == fieldGraphInput {
					inputs = append(inputs, vi)
				} else {
					output = append(output, vi)
				}
				return nil
			case fieldGraphInitializer:
				n, err := p.length(end)
				if err != nil {
					return err
				}
				return tensorName(p.off + n)
			case fieldGraphSparseInit:
				n, err := p.length(end)
				if err != nil {
					return err
				}
				return p.fields(p.off+n, func(num protowire.Number, typ protowire.Type, end int64) error {
					if num != fieldSparseTensorValues || typ != protowire.BytesType {
						return p.skip(typ, end)
					}
					n, err := p.length(end)
					if err != nil {
						return err
					}
					return tensorName(p.off + n)
				})
			}
			return p.skip(typ, end)
		})
	}
	err := p.fields(size, func(num protowire.Number, typ protowire.Type, end int64) error {
		switch {
		case num == fieldModelIRVersion && typ == protowire.VarintType:
			v, err := p.varint()
			irVersion = v
			return err
		case num == fieldModelGraph && typ == protowire.BytesType:
			graphs++
			n, err := p.length(end)
			if err != nil {
				return err
			}
			return graph(p.off + n)
		}
		return p.skip(typ, end)
	})
	if err != nil {
		return serving.Info{}, fmt.Errorf("%w: not an ONNX model: %v", ErrBadInput, err)
	}
	if irVersion == 0 || graphs == 0 {
		return serving.Info{}, fmt.Errorf("%w: not an ONNX model: ir_version %d, graph present %t; want ir_version >= 1 and a graph",
			ErrBadInput, irVersion, graphs > 0)
	}
	var info serving.Info
	seen := make(map[string]bool, len(inputs))
	for _, vi := range inputs {
		if name := vi.GetName(); !inits[name] {
			if seen[name] {
				return serving.Info{}, fmt.Errorf("%w: not a valid ONNX model: graph input %q is listed twice", ErrBadInput, name)
			}
			seen[name] = true
			info.Inputs = append(info.Inputs, ioInfo(vi))
		}
	}
	clear(seen)
	for _, vi := range output {
		name := vi.GetName()
		if seen[name] {
			return serving.Info{}, fmt.Errorf("%w: not a valid ONNX model: graph output %q is listed twice", ErrBadInput, name)
		}
		seen[name] = true
		info.Outputs = append(info.Outputs, ioInfo(vi))
	}
	return info, nil
}

// ioInfo describes a graph input or output as ONNX Runtime reports it: the
// element type as numbered in TensorProto, -1 for a symbolic or unknown
// axis, no shape when the file gives none.
func ioInfo(vi *onnxpb.ValueInfoProto) serving.IOInfo {
	info := serving.IOInfo{Name: vi.GetName(), Kind: serving.KindOther}
	t := vi.GetType()
	switch {
	case t.GetSequenceType() != nil:
		info.Kind = serving.KindSequence
	case t.GetMapType() != nil:
		info.Kind = serving.KindMap
	}
	tt := t.GetTensorType()
	if tt == nil {
		return info
	}
	info.Kind = serving.KindTensor
	info.ElementType = serving.ElementType(tt.GetElemType())
	if sh := tt.GetShape(); sh != nil {
		info.Shape = make([]int64, 0, len(sh.GetDim()))
		for _, d := range sh.GetDim() {
			v := int64(-1)
			if _, fixed := d.GetValue().(*onnxpb.TensorShapeProto_Dimension_DimValue); fixed && d.GetDimValue() >= 0 {
				v = d.GetDimValue()
			}
			info.Shape = append(info.Shape, v)
		}
	}
	return info
}

// pbReader reads the protobuf wire format from a stream, keeping count of
// the bytes consumed, so that fields nobody needs (weights) are skipped
// without being held in memory. Every length is checked against the end of
// the message holding it before anything is read or allocated.
type pbReader struct {
	r   *bufio.Reader
	off int64
}

var errTruncated = errors.New("truncated")

func (p *pbReader) varint() (uint64, error) {
	var x uint64
	for i := range 10 {
		b, err := p.r.ReadByte()
		if err != nil {
			return 0, fmt.Errorf("varint at byte %d: %w", p.off, errTruncated)
		}
		p.off++
		if i == 9 && b > 1 {
			break
		}
		x |= uint64(b&0x7f) << (7 * i)
		if b < 0x80 {
			return x, nil
		}
	}
	return 0, fmt.Errorf("varint at byte %d overflows 64 bits", p.off)
}

// length reads the length of a length-delimited field and checks that it
// ends by end.
func (p *pbReader) length(end int64) (int64, error) {
	n, err := p.varint()
	if err != nil {
		return 0, err
	}
	if left := end - p.off; left < 0 || n > uint64(left) {
		return 0, fmt.Errorf("field of %d bytes at byte %d overruns its message (%d bytes left)", n, p.off, left)
	}
	return int64(n), nil
}

// bytes reads a length-delimited field of at most max bytes.
func (p *pbReader) bytes(end int64, max int64, what string) ([]byte, error) {
	n, err := p.length(end)
	if err != nil {
		return nil, err
	}
	if n > max {
		return nil, fmt.Errorf("%s at byte %d is %d bytes; want at most %d", what, p.off, n, max)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(p.r, b); err != nil {
		return nil, fmt.Errorf("%s at byte %d: %w", what, p.off, errTruncated)
	}
	p.off += n
	return b, nil
}

func (p *pbReader) discard(n int64) error {
	for n > 0 {
		k := int(min(n, 1<<30))
		d, err := p.r.Discard(k)
		p.off += int64(d)
		n -= int64(d)
		if err != nil {
			return fmt.Errorf("field ending at byte %d: %w", p.off+n, errTruncated)
		}
	}
	return nil
}

// skip consumes the value of a field of wire type typ.
func (p *pbReader) skip(typ protowire.Type, end int64) error {
	switch typ {
	case protowire.VarintType:
		_, err := p.varint()
		return err
	case protowire.Fixed32Type, protowire.Fixed64Type:
		n := int64(4)
		if typ == protowire.Fixed64Type {
			n = 8
		}
		if end-p.off < n {
			return fmt.Errorf("fixed-size field at byte %d overruns its message", p.off)
		}
		return p.discard(n)
	case protowire.BytesType:
		n, err := p.length(end)
		if err != nil {
			return err
		}
		return p.discard(n)
	}
	return fmt.Errorf("wire type %d at byte %d; ONNX uses varint, fixed and length-delimited fields only", typ, p.off)
}

// fields calls fn for each field of the message that ends at byte end; fn
// consumes the field's value, skipping it with p.skip when not wanted.
func (p *pbReader) fields(end int64, fn func(num protowire.Number, typ protowire.Type, end int64) error) error {
	for p.off < end {
		at := p.off
		tag, err := p.varint()
		if err != nil {
			return err
		}
		num, typ := protowire.DecodeTag(tag)
		if num < protowire.MinValidNumber || num > protowire.MaxValidNumber || p.off > end {
			return fmt.Errorf("bad field tag at byte %d", at)
		}
		if err := fn(num, typ, end); err != nil {
			return err
		}
	}
	if p.off != end {
		return fmt.Errorf("message overruns its end at byte %d", end)
	}
	return nil
}

// CheckCompatible reports, with ErrIncompatible, the ways a version with
// signature next would break callers of a version with signature cur. The
// rule, applied to what both signatures record:
//
//   - Inputs: next takes exactly the inputs cur takes (callers send all of
//     them, and an unknown input is an error), each with the same element
//     type and rank. Every axis next fixes must be fixed to the same size in
//     cur: next may accept more (an axis fixed in cur may become dynamic),
//     never less.
//   - Outputs: next gives every output cur gives (it may add others), each
//     with the same element type and rank. Every axis cur fixes must be fixed
//     to the same size in next: an axis dynamic in cur may become fixed,
//     never the reverse.
//
// Parts a signature leaves unrecorded are not compared: no inputs (or no
// outputs) at all, an empty ElementType or a nil Shape. So an empty
// signature is compatible with anything.
func CheckCompatible(cur, next Signature) error {
	var diffs []string
	add := func(format string, args ...any) { diffs = append(diffs, fmt.Sprintf(format, args...)) }
	compare := func(kind string, c, n TensorSpec, nextMayWiden bool) {
		if c.ElementType != "" && n.ElementType != "" && c.ElementType != n.ElementType {
			add("%s %q: element type %s, the new version has %s", kind, c.Name, c.ElementType, n.ElementType)
		}
		if c.Shape == nil || n.Shape == nil {
			return
		}
		if len(c.Shape) != len(n.Shape) {
			add("%s %q: shape %v has rank %d, the new version has %v (rank %d)", kind, c.Name, c.Shape, len(c.Shape), n.Shape, len(n.Shape))
			return
		}
		for i := range c.Shape {
			cd, nd := c.Shape[i], n.Shape[i]
			switch {
			case cd >= 0 && nd >= 0 && cd != nd:
				add("%s %q: axis %d is %d, the new version has %d (shape %v, new %v)", kind, c.Name, i, cd, nd, c.Shape, n.Shape)
			case cd < 0 && nd >= 0 && nextMayWiden:
				add("%s %q: axis %d is dynamic, the new version fixes it to %d (shape %v, new %v)", kind, c.Name, i, nd, c.Shape, n.Shape)
			case cd >= 0 && nd < 0 && !nextMayWiden:
				add("%s %q: axis %d is %d, the new version leaves it dynamic (shape %v, new %v)", kind, c.Name, i, cd, c.Shape, n.Shape)
			}
		}
	}
	find := func(specs []TensorSpec, name string) (TensorSpec, bool) {
		i := slices.IndexFunc(specs, func(t TensorSpec) bool { return t.Name == name })
		if i < 0 {
			return TensorSpec{}, false
		}
		return specs[i], true
	}
	if len(cur.Inputs) > 0 && len(next.Inputs) > 0 {
		for _, c := range cur.Inputs {
			if n, ok := find(next.Inputs, c.Name); ok {
				compare("input", c, n, true)
			} else {
				add("input %q is not an input of the new version (callers send it)", c.Name)
			}
		}
		for _, n := range next.Inputs {
			if _, ok := find(cur.Inputs, n.Name); !ok {
				add("the new version needs input %q, which callers do not send", n.Name)
			}
		}
	}
	if len(cur.Outputs) > 0 && len(next.Outputs) > 0 {
		for _, c := range cur.Outputs {
			if n, ok := find(next.Outputs, c.Name); ok {
				compare("output", c, n, false)
			} else {
				add("output %q is missing from the new version", c.Name)
			}
		}
	}
	if len(diffs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrIncompatible, strings.Join(diffs, "; "))
}
