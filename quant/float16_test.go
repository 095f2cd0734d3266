package quant

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/quiverml/quiver/internal/f16"
	"github.com/quiverml/quiver/internal/onnxpb"
	"github.com/stretchr/testify/require"
	ort "github.com/yalue/onnxruntime_go"
	"google.golang.org/protobuf/proto"
)

// TestFloat16Values checks that the quant types convert exactly as the
// shared conversion (internal/f16, where the rounding is tested
// exhaustively) does, both ways, on every half value and on floats around
// each of them.
func TestFloat16Values(t *testing.T) {
	for h := 0; h < 1<<16; h += 7 {
		f := f16.ToFloat32(uint16(h))
		require.Equal(t, math.Float32bits(f), math.Float32bits(Float16(h).Float32()), "%#x", h)
		for _, x := range []float32{f, math.Nextafter32(f, 0), math.Nextafter32(f, float32(math.Inf(1)))} {
			require.Equal(t, Float16(f16.FromFloat32(x)), ToFloat16(x), "ToFloat16(%v)", x)
			require.Equal(t, BFloat16(f16.BF16FromFloat32(x)), ToBFloat16(x), "ToBFloat16(%v)", x)
		}
	}
}

func TestBFloat16(t *testing.T) {
	cases := []struct {
		bits uint32
		want BFloat16
	}{
		{0x3f800000, 0x3f80},
		{0x3f808000, 0x3f80}, // tie, even stays
		{0x3f818000, 0x3f82}, // tie, odd rounds up
		{0x3f808001, 0x3f81},
		{0x7f7fffff, 0x7f80}, // rounds past the largest bfloat16 to Inf
		{0xff800000, 0xff80},
		{0x80000000, 0x8000},
		{0x00000001, 0x0000}, // subnormal rounds to zero
		{0x00008000, 0x0000}, // tie, even
		{0x00018000, 0x0002},
	}
	for _, tc := range cases {
		require.Equal(t, tc.want, ToBFloat16(math.Float32frombits(tc.bits)), "%#x", tc.bits)
	}
	for _, nanBits := range []uint32{0x7fc00000, 0xffc00001, 0x7f800001, 0x7f80ffff} {
		b := ToBFloat16(math.Float32frombits(nanBits))
		require.True(t, math.IsNaN(float64(b.Float32())), "%#x -> %#x", nanBits, b)
		require.Equal(t, uint16(nanBits>>16)&0x8000, uint16(b)&0x8000)
	}
	// Reference: the nearer of the two truncation neighbours, ties to even.
	r := rand.New(rand.NewPCG(13, 14))
	for range 200000 {
		b := r.Uint32()
		f := math.Float32frombits(b)
		if math.IsNaN(float64(f)) {
			continue
		}
		lo := BFloat16(b >> 16)
		hi := lo + 1
		hv := float64(hi.Float32())
		if math.IsInf(hv, 0) {
			hv = math.Copysign(0x1p128, hv) // unbounded-exponent neighbour: overflow rounds to Inf
		}
		dl := math.Abs(float64(f) - float64(lo.Float32()))
		dh := math.Abs(float64(f) - hv)
		want := lo
		if dh < dl || (dh == dl && lo&1 == 1) {
			want = hi
		}
		if math.IsInf(float64(f), 0) {
			want = lo
		}
		require.Equal(t, want, ToBFloat16(f), "bits %#x", b)
	}
}

func TestFloat16Slices(t *testing.T) {
	src := []float32{1, -2, 0.5, 65504}
	h := make([]Float16, 4)
	bf := make([]BFloat16, 4)
	back := make([]float32, 4)
	require.NoError(t, ToFloat16Slice(h, src))
	require.NoError(t, FromFloat16Slice(back, h))
	require.Equal(t, src, back)
	require.NoError(t, ToBFloat16Slice(bf[:3], src[:3]))
	require.NoError(t, FromBFloat16Slice(back[:3], bf[:3]))
	require.Equal(t, src[:3], back[:3])
	require.ErrorIs(t, ToFloat16Slice(h[:1], src), ErrShape)
	require.ErrorIs(t, FromFloat16Slice(back, h[:1]), ErrShape)
	require.ErrorIs(t, ToBFloat16Slice(bf[:1], src), ErrShape)
	require.ErrorIs(t, FromBFloat16Slice(back, bf[:1]), ErrShape)
}

// TestFloat16MatchesORTCast checks ToFloat16 against ONNX Runtime's Cast.
func TestFloat16MatchesORTCast(t *testing.T) {
	initORT(t)
	x := edgeData(0x1p-20, 4096, 21)
	x = append(x, 65519.996, 65520, 0x1p-25, 0x1.8p-24, 1+0x1p-11, 1+0x3p-11, float32(math.Inf(-1)))
	n := int64(len(x))
	g := &onnxpb.GraphProto{
		Name:   proto.String("cast"),
		Node:   []*onnxpb.NodeProto{node("Cast", []string{"x"}, []string{"y"}, intAttr("to", int64(onnxpb.TensorProto_FLOAT16)))},
		Input:  []*onnxpb.ValueInfoProto{valueInfo("x", onnxpb.TensorProto_FLOAT, n)},
		Output: []*onnxpb.ValueInfoProto{valueInfo("y", onnxpb.TensorProto_FLOAT16, n)},
	}
	sess, err := ort.NewDynamicAdvancedSessionWithONNXData(marshalModel(t, model(13, g)), []string{"x"}, []string{"y"}, nil)
	require.NoError(t, err)
	defer sess.Destroy()
	xt, err := ort.NewTensor(ort.NewShape(n), x)
	require.NoError(t, err)
	defer xt.Destroy()
	buf := make([]byte, 2*n)
	yt, err := ort.NewCustomDataTensor(ort.NewShape(n), buf, ort.TensorElementDataTypeFloat16)
	require.NoError(t, err)
	defer yt.Destroy()
	require.NoError(t, sess.Run([]ort.Value{xt}, []ort.Value{yt}))
	for i, v := range x {
		want := Float16(uint16(buf[2*i]) | uint16(buf[2*i+1])<<8)
		require.Equal(t, want, ToFloat16(v), "x=%v", v)
	}
}
