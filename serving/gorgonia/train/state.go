package train

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"slices"

	"github.com/quiverml/quiver/internal/atomicfile"
	"github.com/quiverml/quiver/internal/checkfile"
	"github.com/quiverml/quiver/serving"
)

// State file layout (little endian), version 1:
//
//	magic "QVTRAIN\x00" | u16 version | u8 kind | u8 activation | u8 output
//	built-in kinds (1 logistic regression, 2 MLP, 3 two-tower): u8 towers,
//	  per tower: u8 sizes, sizes x u32
//	kind 4 (ONNXModel): the model's bytes (u32 length + bytes), its target
//	  (u32 length + bytes)
//	u8 solver | f64 learning rate, momentum, beta1, beta2, epsilon, L2,
//	  clip value, clip norm | u32 max batch rows | u64 seed | i64 version
//	name (u32 length + bytes) | u32 metadata entries, per entry (sorted by
//	  key) key and value, each a u32 length + bytes
//	i64 step | i64 rows | f64 loss of the last step (NaN before the first)
//	u8 solver slots (0 SGD, 1 Momentum, 2 Adam)
//	every parameter in arch order (tower by tower, layer by layer, the
//	  weight matrix in x out row-major, then the bias), as f32
//	each solver slot (Momentum: velocity; Adam: first, then second moment)
//	  laid out as the parameters
//	u64 xxhash64 of everything before it (internal/checkfile)
//
// Options are written with their defaults applied. The reader checks the
// checksum before parsing, checks every count against the bytes left before
// allocating for it, and checks every value as New would.
const (
	stateMagic   = "QVTRAIN\x00"
	stateVersion = 1
)

// Save writes the trainer's state (spec, options, parameters, solver state
// and step count) to w, so that Load resumes training where it stopped: the
// next steps after Load equal the steps the saved trainer would have taken.
// It waits for an Update in progress (or returns ctx's error wrapped when
// ctx ends first), copies the state, and writes it without blocking
// updates. After Close it returns serving.ErrClosed.
func (t *Trainer) Save(ctx context.Context, w io.Writer) error {
	if err := t.lock(ctx); err != nil {
		return fmt.Errorf("train: save: %w", err)
	}
	if t.closed.Load() {
		t.unlock()
		return serving.ErrClosed
	}
	s := t.snap.Load() // its params equal t.params while the lock is held
	slots := make([][][]float32, len(t.slots))
	for i, sl := range t.slots {
		slots[i] = clone2(sl)
	}
	t.unlock()

	cw := checkfile.NewWriter(w)
	bw := bufio.NewWriter(cw)
	e := &encoder{w: bw}
	t.encode(e, s, slots)
	if e.err == nil {
		e.err = bw.Flush()
	}
	if e.err == nil {
		e.err = cw.WriteTrailer()
	}
	if e.err != nil {
		return fmt.Errorf("train: save: %w", e.err)
	}
	return nil
}

// SaveFile writes Save's state to path atomically (see Save): a crash
// leaves the old file or the new one. A new file gets mode 0600 before the
// umask.
func (t *Trainer) SaveFile(ctx context.Context, path string) error {
	return atomicfile.Write(path, 0o600, func(w io.Writer) error { return t.Save(ctx, w) })
}

// LoadOptions configure Load. The zero value gives the defaults.
type LoadOptions struct {
	// Logger replaces Options.Logger, which is not saved. Default
	// slog.Default().
	Logger *slog.Logger
}

// Load reads a state written by Save and returns a trainer that resumes
// from it. Input that is not such a state (truncated, damaged, of another
// version, or with values out of range) gives an error matching ErrFormat;
// Load never panics on it and allocates no more than the input's size
// (plus the working copies of the parameters it describes).
func Load(r io.Reader, opts LoadOptions) (*Trainer, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("train: load: %w", err)
	}
	return loadBytes(b, opts)
}

// LoadFile opens path and loads it (see Load).
func LoadFile(path string, opts LoadOptions) (*Trainer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("train: load: %w", err)
	}
	defer f.Close()
	return Load(f, opts)
}

func loadBytes(b []byte, lo LoadOptions) (*Trainer, error) {
	body, err := checkfile.Verify(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	d := &decoder{b: body}
	if string(d.bytes(len(stateMagic))) != stateMagic {
		return nil, fmt.Errorf("%w: not a trainer state (wrong magic)", ErrFormat)
	}
	if v := d.u16(); d.err == nil && v != stateVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrFormat, v, stateVersion)
	}
	k, act, out := kind(d.u8()), Activation(d.u8()), Output(d.u8())
	var raw []byte
	var target string
	ntowers := 0
	if k == kindONNX {
		raw = slices.Clone(d.bytes(int(d.u32())))
		target = d.str()
	} else {
		ntowers = int(d.u8())
	}
	var towers [][]int
	for i := 0; i < ntowers && d.err == nil; i++ {
		n := int(d.u8())
		if !d.need(4 * n) {
			break
		}
		sizes := make([]int, n)
		for j := range sizes {
			sizes[j] = int(d.u32())
		}
		towers = append(towers, sizes)
	}
	var o Options
	o.Solver = Solver(d.u8())
	o.LearningRate, o.Momentum, o.Beta1, o.Beta2 = d.f64(), d.f64(), d.f64(), d.f64()
	o.Epsilon, o.L2, o.ClipValue, o.ClipNorm = d.f64(), d.f64(), d.f64(), d.f64()
	o.MaxBatchRows = int(d.u32())
	o.Seed = d.u64()
	o.Version = int64(d.u64())
	o.Name = d.str()
	if n := int(d.u32()); d.need(8 * n) { // an entry takes at least 8 bytes
		for i := 0; i < n && d.err == nil; i++ {
			if o.Metadata == nil {
				o.Metadata = make(map[string]string, n)
			}
			key := d.str()
			o.Metadata[key] = d.str()
		}
		if d.err == nil && len(o.Metadata) != n {
			return nil, fmt.Errorf("%w: metadata keys repeat", ErrFormat)
		}
	}
	step, rows, loss := int64(d.u64()), int64(d.u64()), d.f64()
	nslots := int(d.u8())
	if d.err != nil {
		return nil, d.err
	}

	var spec Spec
	switch {
	case k == kindLogistic && ntowers == 1 && len(towers[0]) == 2 && towers[0][1] == 1:
		spec = LogisticRegression{Features: towers[0][0]}
	case k == kindMLP && ntowers == 1:
		spec = MLP{Sizes: towers[0], Activation: act, Output: out}
	case k == kindTwoTower && ntowers == 2:
		spec = TwoTower{User: towers[0], Item: towers[1], Activation: act}
	case k == kindONNX && act == ReLU:
		spec = ONNXModel{Model: raw, Target: target, Output: out}
	default:
		return nil, fmt.Errorf("%w: model kind %d with %d towers", ErrFormat, k, ntowers)
	}
	a, err := spec.arch()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	if a.act != act || a.output != out || (k == kindONNX && a.onnx.target != target) {
		return nil, fmt.Errorf("%w: activation %d or output %d does not fit model kind %d", ErrFormat, act, out, k)
	}
	checked, err := o.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	if o.LearningRate == 0 || o.Momentum == 0 || o.Beta1 == 0 || o.Beta2 == 0 || o.Epsilon == 0 || o.MaxBatchRows == 0 || o.Name == "" {
		return nil, fmt.Errorf("%w: options without their defaults", ErrFormat)
	}
	if step < 0 || rows < 0 || (step > 0 && (math.IsNaN(loss) || math.IsInf(loss, 0))) {
		return nil, fmt.Errorf("%w: step %d, rows %d, loss %v", ErrFormat, step, rows, loss)
	}
	if nslots != slotCount(o.Solver) {
		return nil, fmt.Errorf("%w: %d solver slots, want %d for %v", ErrFormat, nslots, slotCount(o.Solver), o.Solver)
	}
	total := 0
	for _, p := range a.params {
		total += p.size()
	}
	if rest := len(d.b) - d.off; rest != 4*total*(1+nslots) {
		return nil, fmt.Errorf("%w: %d bytes of parameters and solver state, want %d", ErrFormat, rest, 4*total*(1+nslots))
	}
	params := d.tensors(a)
	slots := make([][][]float32, nslots)
	for i := range slots {
		slots[i] = d.tensors(a)
	}
	if !finiteAll(params) || slices.ContainsFunc(slots, func(s [][]float32) bool { return !finiteAll(s) }) {
		return nil, fmt.Errorf("%w: a parameter or solver value is not finite", ErrFormat)
	}
	if o.Solver == Adam {
		for _, v := range slots[1] {
			if slices.ContainsFunc(v, func(x float32) bool { return x < 0 }) {
				return nil, fmt.Errorf("%w: negative Adam second moment", ErrFormat)
			}
		}
	}
	checked.Logger = lo.Logger
	return newTrainer(a, checked, params, slots, step, rows, loss), nil
}

func (t *Trainer) encode(e *encoder, s *snapshot, slots [][][]float32) {
	a, o := t.a, &t.opts
	e.bytes([]byte(stateMagic))
	e.u16(stateVersion)
	e.u8(uint8(a.kind))
	e.u8(uint8(a.act))
	e.u8(uint8(a.output))
	if a.kind == kindONNX {
		e.str(string(a.onnx.raw))
		e.str(a.onnx.target)
	} else {
		e.u8(uint8(len(a.towers)))
		for _, tw := range a.towers {
			e.u8(uint8(len(tw.sizes)))
			for _, n := range tw.sizes {
				e.u32(uint32(n))
			}
		}
	}
	e.u8(uint8(o.Solver))
	for _, f := range []float64{o.LearningRate, o.Momentum, o.Beta1, o.Beta2, o.Epsilon, o.L2, o.ClipValue, o.ClipNorm} {
		e.f64(f)
	}
	e.u32(uint32(o.MaxBatchRows))
	e.u64(o.Seed)
	e.u64(uint64(o.Version))
	e.str(o.Name)
	keys := make([]string, 0, len(o.Metadata))
	for k := range o.Metadata {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	e.u32(uint32(len(keys)))
	for _, k := range keys {
		e.str(k)
		e.str(o.Metadata[k])
	}
	e.u64(uint64(s.step))
	e.u64(uint64(s.rows))
	e.f64(s.loss)
	e.u8(uint8(len(slots)))
	e.tensors(s.params)
	for _, sl := range slots {
		e.tensors(sl)
	}
}

type encoder struct {
	w   *bufio.Writer
	buf [8]byte
	err error
}

func (e *encoder) bytes(b []byte) {
	if e.err == nil {
		_, e.err = e.w.Write(b)
	}
}
func (e *encoder) u8(v uint8) { e.bytes([]byte{v}) }
func (e *encoder) u16(v uint16) {
	binary.LittleEndian.PutUint16(e.buf[:], v)
	e.bytes(e.buf[:2])
}
func (e *encoder) u32(v uint32) {
	binary.LittleEndian.PutUint32(e.buf[:], v)
	e.bytes(e.buf[:4])
}
func (e *encoder) u64(v uint64) {
	binary.LittleEndian.PutUint64(e.buf[:], v)
	e.bytes(e.buf[:8])
}
func (e *encoder) f64(v float64) { e.u64(math.Float64bits(v)) }
func (e *encoder) str(s string) {
	e.u32(uint32(len(s)))
	if e.err == nil {
		_, e.err = e.w.WriteString(s)
	}
}
func (e *encoder) tensors(ps [][]float32) {
	for _, p := range ps {
		for _, v := range p {
			e.u32(math.Float32bits(v))
		}
	}
}

// decoder reads a verified body. The first error sticks; later reads
// return zero values.
type decoder struct {
	b   []byte
	off int
	err error
}

// need reports whether n more bytes are there, recording an error if not.
func (d *decoder) need(n int) bool {
	if d.err != nil {
		return false
	}
	if n < 0 || n > len(d.b)-d.off {
		d.err = fmt.Errorf("%w: %w at byte %d", ErrFormat, checkfile.ErrTruncated, d.off)
		return false
	}
	return true
}

func (d *decoder) bytes(n int) []byte {
	if !d.need(n) {
		return nil
	}
	b := d.b[d.off : d.off+n]
	d.off += n
	return b
}

func (d *decoder) u8() uint8 {
	if b := d.bytes(1); b != nil {
		return b[0]
	}
	return 0
}
func (d *decoder) u16() uint16 {
	if b := d.bytes(2); b != nil {
		return binary.LittleEndian.Uint16(b)
	}
	return 0
}
func (d *decoder) u32() uint32 {
	if b := d.bytes(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}
func (d *decoder) u64() uint64 {
	if b := d.bytes(8); b != nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}
func (d *decoder) f64() float64 { return math.Float64frombits(d.u64()) }
func (d *decoder) str() string  { return string(d.bytes(int(d.u32()))) }

// tensors reads one value per parameter of a; the caller checked that the
// bytes are there.
func (d *decoder) tensors(a *arch) [][]float32 {
	ps := zeros(a)
	for _, p := range ps {
		for k := range p {
			p[k] = math.Float32frombits(d.u32())
		}
	}
	return ps
}
