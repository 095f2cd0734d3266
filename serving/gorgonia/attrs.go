package gorgonia

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/quiverml/quiver/internal/onnxpb"
)

// attrs reads a node's attributes, checking their types; every attribute
// the node carries must be one its operator's parser reads (known), so an
// attribute this engine would silently ignore is refused instead.
type attrs struct {
	n   *gnode
	m   map[string]*onnxpb.AttributeProto
	err error
}

func newAttrs(n *gnode, np *onnxpb.NodeProto, known []string) (*attrs, error) {
	a := &attrs{n: n, m: map[string]*onnxpb.AttributeProto{}}
	for _, at := range np.GetAttribute() {
		name := at.GetName()
		if _, dup := a.m[name]; dup {
			return nil, modelError("node %q (%s): attribute %q is given twice", n.name, n.op, name)
		}
		if !slices.Contains(known, name) {
			sorted := append([]string(nil), known...)
			sort.Strings(sorted)
			list := strings.Join(sorted, ", ")
			if list == "" {
				list = "none"
			}
			return nil, n.unsupported("attribute %s not supported; supported: %s", name, list)
		}
		a.m[name] = at
	}
	return a, nil
}

func (n *gnode) unsupported(format string, args ...any) error {
	return &UnsupportedError{Node: n.name, Op: n.op, What: fmt.Sprintf(format, args...)}
}

func (n *gnode) malformed(format string, args ...any) error {
	return modelError("node %q (%s): %s", n.name, n.op, fmt.Sprintf(format, args...))
}

func (a *attrs) get(name string, t onnxpb.AttributeProto_AttributeType) *onnxpb.AttributeProto {
	at := a.m[name]
	if at == nil {
		return nil
	}
	if at.GetType() != t && at.GetType() != onnxpb.AttributeProto_UNDEFINED {
		if a.err == nil {
			a.err = a.n.malformed("attribute %s is a %s, want a %s", name, at.GetType(), t)
		}
		return nil
	}
	return at
}

func (a *attrs) has(name string) bool { return a.m[name] != nil }

func (a *attrs) int(name string, def int64) int64 {
	if at := a.get(name, onnxpb.AttributeProto_INT); at != nil {
		return at.GetI()
	}
	return def
}

func (a *attrs) float(name string, def float64) float64 {
	if at := a.get(name, onnxpb.AttributeProto_FLOAT); at != nil {
		return float64(at.GetF())
	}
	return def
}

func (a *attrs) str(name, def string) string {
	if at := a.get(name, onnxpb.AttributeProto_STRING); at != nil {
		return string(at.GetS())
	}
	return def
}

func (a *attrs) ints(name string) ([]int64, bool) {
	if at := a.get(name, onnxpb.AttributeProto_INTS); at != nil {
		return append([]int64(nil), at.GetInts()...), true
	}
	return nil, false
}

func (a *attrs) floats(name string) ([]float32, bool) {
	if at := a.get(name, onnxpb.AttributeProto_FLOATS); at != nil {
		return append([]float32(nil), at.GetFloats()...), true
	}
	return nil, false
}

func (a *attrs) tensor(name string) *onnxpb.TensorProto {
	if at := a.get(name, onnxpb.AttributeProto_TENSOR); at != nil {
		return at.GetT()
	}
	return nil
}

// flag reads a 0/1 attribute that this engine supports only at want.
func (a *attrs) flag(name string, def, want int64) error {
	v := a.int(name, def)
	if v != want {
		return a.n.unsupported("attribute %s=%d not supported; supported: %d", name, v, want)
	}
	return nil
}
