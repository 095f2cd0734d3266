package onnx

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// graphSignature is what Quiver reads from the model bytes itself, beyond
// what ONNX Runtime reports: the symbolic names of dynamic axes, which tell a
// batch axis shared by inputs and outputs apart from other dynamic axes.
type graphSignature struct {
	dims map[string][]dimInfo // by input/output name
	// seqOfMaps marks sequence values whose elements are maps: one map per
	// row, as scikit-learn's ZipMap writes class probabilities.
	seqOfMaps map[string]bool
}

type dimInfo struct {
	value int64  // > 0 when fixed
	param string // symbolic name, "" when fixed or unnamed
}

var errProto = errors.New("malformed ONNX protobuf")

// Field numbers from onnx.proto.
const (
	fModelGraph       = 7
	fGraphInput       = 11
	fGraphOutput      = 12
	fValueInfoName    = 1
	fValueInfoType    = 2
	fTypeTensor       = 1
	fTypeSequence     = 4
	fTypeMap          = 5
	fSequenceElemType = 1
	fTensorShape      = 2
	fShapeDim         = 1
	fDimValue         = 1
	fDimParam         = 2
)

// parseSignature walks the model's protobuf just far enough to read the
// graph's input and output shapes; initializers and nodes are skipped
// without being decoded. It never panics on malformed bytes.
func parseSignature(b []byte) (*graphSignature, error) {
	sig := &graphSignature{dims: map[string][]dimInfo{}, seqOfMaps: map[string]bool{}}
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		if num != fModelGraph || typ != protowire.BytesType {
			return nil
		}
		return eachField(v, func(num protowire.Number, typ protowire.Type, v []byte) error {
			if (num != fGraphInput && num != fGraphOutput) || typ != protowire.BytesType {
				return nil
			}
			return sig.valueInfo(v)
		})
	})
	if err != nil {
		return nil, err
	}
	return sig, nil
}

func (s *graphSignature) valueInfo(b []byte) error {
	var name string
	var dims []dimInfo
	seqOfMaps := false
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		switch {
		case num == fValueInfoName && typ == protowire.BytesType:
			name = string(v)
		case num == fValueInfoType && typ == protowire.BytesType:
			return eachField(v, func(num protowire.Number, typ protowire.Type, v []byte) error {
				if num == fTypeSequence && typ == protowire.BytesType {
					return eachField(v, func(num protowire.Number, typ protowire.Type, v []byte) error {
						if num != fSequenceElemType || typ != protowire.BytesType {
							return nil
						}
						return eachField(v, func(num protowire.Number, typ protowire.Type, v []byte) error {
							if num == fTypeMap {
								seqOfMaps = true
							}
							return nil
						})
					})
				}
				if num != fTypeTensor || typ != protowire.BytesType {
					return nil
				}
				return eachField(v, func(num protowire.Number, typ protowire.Type, v []byte) error {
					if num != fTensorShape || typ != protowire.BytesType {
						return nil
					}
					return eachField(v, func(num protowire.Number, typ protowire.Type, v []byte) error {
						if num != fShapeDim || typ != protowire.BytesType {
							return nil
						}
						var d dimInfo
						err := eachField(v, func(num protowire.Number, typ protowire.Type, v []byte) error {
							switch {
							case num == fDimValue && typ == protowire.VarintType:
								x, n := protowire.ConsumeVarint(v)
								if n < 0 {
									return errProto
								}
								d.value = int64(x)
							case num == fDimParam && typ == protowire.BytesType:
								d.param = string(v)
							}
							return nil
						})
						dims = append(dims, d)
						return err
					})
				})
			})
		}
		return nil
	})
	if err == nil && name != "" {
		s.dims[name] = dims
		s.seqOfMaps[name] = seqOfMaps
	}
	return err
}

// eachField calls fn for every field of one protobuf message. For varint
// fields v holds the encoded varint; for bytes fields, the payload.
func eachField(b []byte, fn func(protowire.Number, protowire.Type, []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%w: bad tag", errProto)
		}
		b = b[n:]
		var v []byte
		switch typ {
		case protowire.BytesType:
			p, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return fmt.Errorf("%w: truncated field %d", errProto, num)
			}
			v, n = p, m
		case protowire.VarintType:
			_, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return fmt.Errorf("%w: truncated varint field %d", errProto, num)
			}
			v, n = b[:m], m
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return fmt.Errorf("%w: bad field %d", errProto, num)
			}
		}
		if err := fn(num, typ, v); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}
