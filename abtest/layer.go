package abtest

import (
	"fmt"
	"sync"
)

// Layer is a namespace of mutually exclusive experiments. Each experiment in
// a layer owns a slice [from, to) of the layer's buckets, computed with the
// layer's own salt; slices never overlap, so a unit is enrolled in at most
// one experiment of a layer. Different layers use different salts, so a
// unit's experiment in one layer says nothing about its experiment in
// another: experiments in different layers are independent.
//
// A Layer is safe for concurrent use.
type Layer struct {
	name   string
	salt   string
	prefix prefix

	mu    sync.RWMutex
	slots []layerSlot
}

type layerSlot struct {
	exp    *Experiment
	lo, hi uint32
}

// NewLayer returns an empty layer. salt empty means name; it must not contain
// the bytes 0x00 or 0x01, and should differ from every other layer's salt.
func NewLayer(name, salt string) (*Layer, error) {
	if name == "" {
		return nil, fmt.Errorf("%w: layer name is empty, want a non-empty name", ErrConfig)
	}
	if salt == "" {
		salt = name
	}
	if !validSalt(salt) {
		return nil, fmt.Errorf("%w: layer %q: salt %q contains byte 0x00 or 0x01, want neither", ErrConfig, name, salt)
	}
	return &Layer{name: name, salt: salt, prefix: newPrefix(salt, sepVariant)}, nil
}

// Name returns the layer's name.
func (l *Layer) Name() string { return l.name }

// Salt returns the salt the layer hashes with.
func (l *Layer) Salt() string { return l.salt }

// Add gives e the slice [from, to) of the layer's traffic, as fractions in
// [0, 1] (converted to buckets as floor(f*Buckets + 0.5)). From then on e
// enrolls only units whose layer bucket falls in the slice; other units get
// e's control with ReasonOutsideLayer. The slice must not overlap another
// experiment's, and e must not already belong to a layer.
func (l *Layer) Add(e *Experiment, from, to float64) error {
	if e == nil {
		return fmt.Errorf("%w: layer %q: nil experiment", ErrConfig, l.name)
	}
	if !(from >= 0 && from < to && to <= 1) {
		return fmt.Errorf("%w: layer %q: slice [%v, %v) for experiment %q, want 0 <= from < to <= 1", ErrConfig, l.name, from, to, e.name)
	}
	lo, hi := fractionToBuckets(from), fractionToBuckets(to)
	if lo >= hi {
		return fmt.Errorf("%w: layer %q: slice [%v, %v) is narrower than one bucket", ErrConfig, l.name, from, to)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.slots {
		if s.exp.name == e.name {
			return fmt.Errorf("%w: layer %q already has an experiment named %q", ErrConfig, l.name, e.name)
		}
		if lo < s.hi && s.lo < hi {
			return fmt.Errorf("%w: layer %q: slice [%v, %v) overlaps experiment %q's [%v, %v)", ErrConfig, l.name, from, to, s.exp.name,
				float64(s.lo)/Buckets, float64(s.hi)/Buckets)
		}
	}
	if err := e.joinLayer(&layerGate{layer: l, lo: lo, hi: hi}); err != nil {
		return err
	}
	l.slots = append(l.slots, layerSlot{exp: e, lo: lo, hi: hi})
	return nil
}

// Remove takes e out of the layer, freeing its slice; e then enrolls units
// regardless of the layer. It reports whether e was in the layer.
func (l *Layer) Remove(e *Experiment) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, s := range l.slots {
		if s.exp == e {
			l.slots = append(l.slots[:i], l.slots[i+1:]...)
			e.leaveLayer()
			return true
		}
	}
	return false
}

// Experiments returns the layer's experiments in the order they were added.
func (l *Layer) Experiments() []*Experiment {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]*Experiment, len(l.slots))
	for i, s := range l.slots {
		out[i] = s.exp
	}
	return out
}

// Assign finds the experiment whose slice holds unit and returns its
// assignment. ok is false when the unit's bucket is in no experiment's slice.
func (l *Layer) Assign(unit string, attrs Attributes) (a Assignment, ok bool, err error) {
	if unit == "" {
		return Assignment{}, false, fmt.Errorf("%w (layer %q)", ErrEmptyUnit, l.name)
	}
	b := l.prefix.bucket(unit)
	l.mu.RLock()
	var e *Experiment
	for _, s := range l.slots {
		if b >= s.lo && b < s.hi {
			e = s.exp
			break
		}
	}
	l.mu.RUnlock()
	if e == nil {
		return Assignment{}, false, nil
	}
	a, err = e.Assign(unit, attrs)
	return a, err == nil, err
}
