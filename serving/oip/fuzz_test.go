package oip

import (
	"encoding/binary"
	"errors"
	"math"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/quiverml/quiver/serving"
	pb "github.com/quiverml/quiver/serving/oip/inferencepb"
)

// allTypes holds one tensor of every datatype, with its extremes.
func allTypes() []serving.Tensor {
	s := []int64{2, 2}
	return []serving.Tensor{
		serving.NewTensor(s, []bool{true, false, false, true}),
		serving.NewTensor(s, []uint8{0, 1, 200, 255}),
		serving.NewTensor(s, []uint16{0, 1, 40000, math.MaxUint16}),
		serving.NewTensor(s, []uint32{0, 1, 3e9, math.MaxUint32}),
		serving.NewTensor(s, []uint64{0, 1, 1 << 63, math.MaxUint64}),
		serving.NewTensor(s, []int8{math.MinInt8, -1, 0, math.MaxInt8}),
		serving.NewTensor(s, []int16{math.MinInt16, -1, 0, math.MaxInt16}),
		serving.NewTensor(s, []int32{math.MinInt32, -1, 0, math.MaxInt32}),
		serving.NewTensor(s, []int64{math.MinInt64, -1, 0, math.MaxInt64}),
		serving.NewTensor(s, []serving.F16{serving.F16From(1.5), serving.F16From(-65504), serving.F16From(5.9604645e-08), serving.F16From(float32(math.Inf(1)))}),
		serving.NewTensor(s, []float32{math.MaxFloat32, -math.SmallestNonzeroFloat32, 0.1, float32(math.Inf(-1))}),
		serving.NewTensor(s, []float64{math.MaxFloat64, math.SmallestNonzeroFloat64, -0.1, math.Inf(1)}),
		serving.NewTensor(s, []string{"", "a\"b\\c\n\t\x01", "é✓🙂", string(make([]byte, 300))}),
		serving.NewTensor(s, []serving.BF16{serving.BF16From(1.5), serving.BF16From(-3e38), serving.BF16From(1e-38), serving.BF16From(float32(math.Inf(-1)))}),
	}
}

// The JSON, raw and typed encodings each give back the tensor encoded.
func TestEncodingsRoundTrip(t *testing.T) {
	for _, tensor := range allTypes() {
		et := tensor.ElementType()
		name := Datatype(et)
		t.Run(name, func(t *testing.T) {
			require.Equal(t, et, ElementType(name))

			js, err := appendJSONData(nil, "out", tensor)
			require.NoError(t, err)
			got, err := decodeJSONData("in", et, tensor.Shape, js)
			require.NoError(t, err, "%s", js)
			require.Equal(t, tensor, got, "%s", js)

			raw := appendRaw(nil, tensor)
			require.Len(t, raw, rawLen(tensor))
			got, err = decodeRaw("in", et, tensor.Shape, raw)
			require.NoError(t, err)
			require.Equal(t, tensor, got)

			if contentsField(et) != "" {
				got, err = decodeContents("in", et, tensor.Shape, encodeContents(tensor))
				require.NoError(t, err)
				require.Equal(t, tensor, got)
			}
		})
	}
	// NaN travels as a string and comes back NaN.
	js, err := appendJSONData(nil, "out", serving.NewTensor([]int64{1}, []float32{float32(math.NaN())}))
	require.NoError(t, err)
	require.Equal(t, `["NaN"]`, string(js))
	got, err := decodeJSONData("in", serving.Float32, []int64{1}, js)
	require.NoError(t, err)
	require.True(t, math.IsNaN(float64(got.Data.([]float32)[0])))
	// Bytes that are not UTF-8 cannot be JSON.
	_, err = appendJSONData(nil, "out", serving.NewTensor([]int64{1}, []string{"\xff"}))
	require.ErrorIs(t, err, ErrUnsupported)
}

// decodedSize is the memory a decoded request holds in its tensors.
func decodedSize(req *inferRequest) int {
	n := 0
	for _, t := range req.inputs {
		if s, ok := t.Data.([]string); ok {
			for _, e := range s {
				n += 16 + len(e)
			}
			continue
		}
		n += t.Len() * t.ElementType().Size()
	}
	return n
}

// checkDecoded checks what a decoder accepted: every tensor's data matches
// its shape, and the memory held stays within a small multiple of the
// bytes decoded.
func checkDecoded(t *testing.T, req *inferRequest, err error, size int) {
	if err != nil {
		if !errors.Is(err, ErrInvalidRequest) && !errors.Is(err, ErrUnsupported) {
			t.Fatalf("error matches no sentinel: %v", err)
		}
		return
	}
	for name, tensor := range req.inputs {
		if n := shapeCount(tensor.Shape); n < 0 || int64(tensor.Len()) != n {
			t.Fatalf("input %q: %d elements for shape %v", name, tensor.Len(), tensor.Shape)
		}
		if Datatype(tensor.ElementType()) == "" {
			t.Fatalf("input %q: element type %v", name, tensor.ElementType())
		}
	}
	if got := decodedSize(req); got > 16*size+64 {
		t.Fatalf("decoded %d bytes of tensors from %d bytes", got, size)
	}
}

func FuzzDecodeInferRequest(f *testing.F) {
	f.Add([]byte(`{"id":"1","inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[[1,2],[3.5,"NaN"]]}],"outputs":[{"name":"y","parameters":{"binary_data":true}}]}`), int64(-1))
	f.Add([]byte(`{"inputs":[{"name":"s","shape":[2],"datatype":"BYTES","data":["a","\u00e9"]},{"name":"b","shape":[],"datatype":"BOOL","data":true}]}`), int64(-1))
	f.Add([]byte(`{"inputs":[{"name":"i","shape":[1,2],"datatype":"INT8","data":[-128,127]},{"name":"u","shape":[2],"datatype":"UINT64","data":[0,18446744073709551615]}]}`), int64(-1))
	for _, tensor := range allTypes() {
		head := `{"parameters":{"binary_data_output":true},"inputs":[{"name":"x","shape":[2,2],"datatype":"` + Datatype(tensor.ElementType()) +
			`","parameters":{"binary_data_size":` + strconv.Itoa(rawLen(tensor)) + `}}]}`
		f.Add(append([]byte(head), appendRaw(nil, tensor)...), int64(len(head)))
		js, _ := appendJSONData(nil, "x", tensor)
		f.Add([]byte(`{"inputs":[{"name":"x","shape":[2,2],"datatype":"`+Datatype(tensor.ElementType())+`","data":`+string(js)+`}]}`), int64(-1))
	}
	f.Fuzz(func(t *testing.T, body []byte, headerLen int64) {
		req, err := decodeInferRequest(body, headerLen)
		checkDecoded(t, req, err, len(body))
	})
}

func FuzzDecodeGRPCRequest(f *testing.F) {
	for _, tensor := range allTypes() {
		input := &pb.ModelInferRequest_InferInputTensor{Name: "x", Datatype: Datatype(tensor.ElementType()), Shape: tensor.Shape}
		raw, _ := proto.Marshal(&pb.ModelInferRequest{ModelName: "m", Inputs: []*pb.ModelInferRequest_InferInputTensor{input},
			RawInputContents: [][]byte{appendRaw(nil, tensor)}})
		f.Add(raw)
		if contentsField(tensor.ElementType()) != "" {
			input.Contents = encodeContents(tensor)
			typed, _ := proto.Marshal(&pb.ModelInferRequest{ModelName: "m", Inputs: []*pb.ModelInferRequest_InferInputTensor{input}})
			f.Add(typed)
		}
	}
	var lenBytes [4]byte
	binary.LittleEndian.PutUint32(lenBytes[:], math.MaxUint32)
	huge, _ := proto.Marshal(&pb.ModelInferRequest{Inputs: []*pb.ModelInferRequest_InferInputTensor{{Name: "s", Datatype: "BYTES", Shape: []int64{1 << 40}}},
		RawInputContents: [][]byte{lenBytes[:]}})
	f.Add(huge)
	f.Fuzz(func(t *testing.T, data []byte) {
		var msg pb.ModelInferRequest
		if proto.Unmarshal(data, &msg) != nil {
			return
		}
		req, _, err := decodeGRPCRequest(&msg)
		checkDecoded(t, req, err, len(data))
	})
}
