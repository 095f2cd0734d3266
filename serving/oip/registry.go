package oip

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/quiverml/quiver/registry"
	"github.com/quiverml/quiver/serving"
)

// AliasSeparator joins a registry model name and an alias into the model
// name clients use ("ranker:canary"). Registry names cannot contain it
// (see registry.ValidName), so the split is never ambiguous.
const AliasSeparator = ":"

// RegistryModels returns a Repository serving the aliases of a registry
// Server by name:
//
//   - "<model>" serves the first of aliases, or registry.Latest (the newest
//     version) when none are given;
//   - "<model>:<alias>" serves that alias, which must be one of aliases
//     when any are given (any alias the Server serves otherwise);
//   - "<model>/versions/<n>" (and "<model>:<alias>/versions/<n>", where the
//     alias part is ignored) serves version n, when one of those aliases
//     points at it now.
//
// A registry.Server keeps versions loaded by policy but hands out models
// only by alias, so a version that no alias points at any more (the one a
// rollback would return to, say) is not served by number: it answers
// ErrVersionNotFound, as does any version not loaded. A request for a
// version runs on that version or fails: if its alias moves while the
// request is on its way, the request is retried on another alias pointing
// at that version, and fails when there is none.
//
// A name whose alias serves no loaded version yet is unknown
// (ErrModelNotFound) until its first version loads; an alias that stops
// serving later (the Server closed) answers serving.ErrClosed. Answers
// report the registry version that served them as model_version, and
// Metadata reports the version's format as the platform ("onnx_onnxv1" for
// "onnx") and, as the versions a client may request, every version the
// aliases point at now.
//
// Requests go to the alias's registry.Handle directly, one model run per
// request. To merge concurrent requests, put a serving.Batcher in front of
// each Handle and serve the batchers with Models: answers still report the
// registry version.
func RegistryModels(srv *registry.Server, aliases ...string) Repository {
	r := &regRepo{srv: srv, aliases: slices.Clone(aliases), def: registry.Latest}
	if len(aliases) > 0 {
		r.def = aliases[0]
	}
	return r
}

type regRepo struct {
	srv     *registry.Server
	aliases []string // allowed aliases; nil means any
	def     string   // the alias a bare model name serves
	handles sync.Map // aliasKey -> *registry.Handle
}

type aliasKey struct{ model, alias string }

func (r *regRepo) allowed(alias string) bool {
	return r.aliases == nil || slices.Contains(r.aliases, alias)
}

// split parses a client's model name into a registry model and alias.
func (r *regRepo) split(name string) (model, alias string, err error) {
	model, alias, qualified := strings.Cut(name, AliasSeparator)
	if !qualified {
		alias = r.def
	}
	if registry.ValidName(model) != nil || alias != registry.Latest && registry.ValidName(alias) != nil {
		return "", "", fmt.Errorf("%w: %q is not a registry model name (want <model> or <model>%s<alias>)", ErrModelNotFound, name, AliasSeparator)
	}
	if !r.allowed(alias) {
		return "", "", fmt.Errorf("%w: %q: alias %q is not served; the aliases served are %s", ErrModelNotFound, name, alias, listNames(r.aliases))
	}
	return model, alias, nil
}

// serving returns what the allowed aliases of model serve now, sorted by
// alias.
func (r *regRepo) serving(model string) []registry.ServingStats {
	var out []registry.ServingStats
	for _, s := range r.srv.Stats().Serving {
		if s.Model == model && r.allowed(s.Alias) {
			out = append(out, s)
		}
	}
	return out
}

func (r *regRepo) Names(context.Context) ([]string, error) {
	var names []string
	for _, s := range r.srv.Stats().Serving {
		if !r.allowed(s.Alias) {
			continue
		}
		names = append(names, s.Model+AliasSeparator+s.Alias)
		if s.Alias == r.def {
			names = append(names, s.Model)
		}
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

func (r *regRepo) handle(name, model, alias string) (*registry.Handle, error) {
	k := aliasKey{model, alias}
	if h, ok := r.handles.Load(k); ok {
		return h.(*registry.Handle), nil
	}
	// Server.Model accepts any name and remembers it; only names that
	// serve something are asked for, so clients cannot grow that set.
	if _, ok := r.srv.Current(model, alias); !ok {
		return nil, fmt.Errorf("%w: %q: alias %q of registry model %q serves no loaded version", ErrModelNotFound, name, alias, model)
	}
	h, err := r.srv.Model(model, alias)
	if err != nil {
		return nil, fmt.Errorf("model %q: %w", name, err)
	}
	got, _ := r.handles.LoadOrStore(k, h)
	return got.(*registry.Handle), nil
}

func parseVersion(name, version string) (int64, error) {
	n, err := strconv.ParseInt(version, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%w: model %q: version %q is not a registry version number (want a positive integer)", ErrVersionNotFound, name, version)
	}
	return n, nil
}

func (r *regRepo) Model(_ context.Context, name, version string) (serving.Model, error) {
	model, alias, err := r.split(name)
	if err != nil {
		return nil, err
	}
	if version == "" {
		return r.handle(name, model, alias)
	}
	n, err := parseVersion(name, version)
	if err != nil {
		return nil, err
	}
	vm := &versionModel{r: r, name: name, model: model, number: n}
	if _, err := vm.handle(); err != nil {
		return nil, err
	}
	return vm, nil
}

func (r *regRepo) Metadata(_ context.Context, name, version string) (Metadata, error) {
	model, alias, err := r.split(name)
	if err != nil {
		return Metadata{}, err
	}
	served := r.serving(model)
	md := Metadata{Versions: versionList(served)}
	var cur registry.Version
	if version == "" {
		v, ok := r.srv.Current(model, alias)
		if !ok {
			return Metadata{}, fmt.Errorf("%w: %q: alias %q of registry model %q serves no loaded version", ErrModelNotFound, name, alias, model)
		}
		cur = v
	} else {
		n, err := parseVersion(name, version)
		if err != nil {
			return Metadata{}, err
		}
		i := slices.IndexFunc(served, func(s registry.ServingStats) bool { return s.Version == n })
		if i < 0 {
			return Metadata{}, versionNotServed(name, n, md.Versions)
		}
		v, ok := r.srv.Current(model, served[i].Alias)
		if !ok || v.Number != n {
			return Metadata{}, versionNotServed(name, n, md.Versions)
		}
		cur = v
	}
	md.Version = strconv.FormatInt(cur.Number, 10)
	md.Platform = platform(cur.Format)
	md.Ready = true
	return md, nil
}

// versionList returns the versions served, in ascending order, once each.
func versionList(served []registry.ServingStats) []string {
	nums := make([]int64, 0, len(served))
	for _, s := range served {
		nums = append(nums, s.Version)
	}
	slices.Sort(nums)
	nums = slices.Compact(nums)
	out := make([]string, len(nums))
	for i, n := range nums {
		out[i] = strconv.FormatInt(n, 10)
	}
	return out
}

func versionNotServed(name string, n int64, versions []string) error {
	return fmt.Errorf("%w: model %q: no alias serves version %d now; the versions served are %s", ErrVersionNotFound, name, n, listNames(versions))
}

// platform names a registry format as the protocol spells platforms.
func platform(format string) string {
	if format == "onnx" {
		return "onnx_onnxv1"
	}
	return format
}

// versionModel serves one registry version through whichever allowed alias
// points at it when a request runs.
type versionModel struct {
	r      *regRepo
	name   string
	model  string
	number int64
}

var _ serving.Model = (*versionModel)(nil)

func (v *versionModel) handle() (*registry.Handle, error) {
	served := v.r.serving(v.model)
	for _, s := range served {
		if s.Version == v.number {
			return v.r.handle(v.name, v.model, s.Alias)
		}
	}
	return nil, versionNotServed(v.name, v.number, versionList(served))
}

// Info describes the version through the alias serving it now.
func (v *versionModel) Info() serving.Info {
	h, err := v.handle()
	if err != nil {
		return serving.Info{Name: v.name}
	}
	return h.Info()
}

// Predict runs the request on the version, through an alias that points at
// it. An alias that moved between the lookup and the run answers with
// another version; that answer is dropped and the request retried on an
// alias that still points at the version, a few times at most.
func (v *versionModel) Predict(ctx context.Context, inputs map[string]serving.Tensor) (map[string]serving.Value, error) {
	const attempts = 3
	for range attempts {
		h, err := v.handle()
		if err != nil {
			return nil, err
		}
		out, served, err := h.PredictVersion(ctx, inputs)
		if err != nil {
			return nil, err
		}
		if served.Version == v.number {
			return out, nil
		}
	}
	return nil, fmt.Errorf("%w: model %q: version %d kept moving between aliases during the request", ErrVersionNotFound, v.name, v.number)
}

// Close does nothing: the versions belong to the registry Server.
func (v *versionModel) Close() error { return nil }
