package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// knownCodes are the error codes a client error may carry.
var knownCodes = []string{"bad_user", "unknown_user", "bad_k", "bad_max_price", "bad_request", "bad_feedback",
	"unknown_request", "duplicate_feedback"}

// requireClientAnswer checks that w is a success or a typed client error,
// never a server failure.
func requireClientAnswer(t *testing.T, w *httptest.ResponseRecorder) {
	t.Helper()
	if w.Code == http.StatusOK {
		return
	}
	require.Contains(t, []int{400, 404, 409}, w.Code, w.Body.String())
	var eb errorBody
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &eb), w.Body.String())
	require.Contains(t, knownCodes, eb.Error.Code, w.Body.String())
	require.NotEmpty(t, eb.Error.Message)
}

func FuzzFeedbackBody(f *testing.F) {
	for _, s := range []string{
		`{"user":"u1","item":"i2","request_id":"x-1","clicked":true}`,
		`{"user":"u1","request_id":"x-1","clicked":false}`,
		`{"clicked":null}`, `[]`, `{}`, `{"user":1}`, `{"user":"u1"}{}`, "\xff\xfe", ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		app, _ := sharedApp(t)
		w := httptest.NewRecorder()
		app.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/feedback", bytes.NewReader(body)))
		requireClientAnswer(t, w)
	})
}

func FuzzRecommendBody(f *testing.F) {
	for _, s := range []string{
		`{"user":"u1","k":3}`, `{"user":"u1","k":3,"max_price":0.5}`, `{"user":"u1","k":-1}`,
		`{"user":"u1","max_price":1e309}`, `{"user":"u01"}`, `{"user":""}`, `null`, `{"k":"3"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		app, _ := sharedApp(t)
		w := httptest.NewRecorder()
		app.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/recommend", bytes.NewReader(body)))
		requireClientAnswer(t, w)
		requireRanked(t, w, body)
	})
}

func FuzzRecommendQuery(f *testing.F) {
	f.Add("u1", "3", "")
	f.Add("u199", "50", "0.3")
	f.Add("u200", "1", "")
	f.Add("u-1", "+3", "-0")
	f.Add("", "0x10", "Inf")
	f.Add("u1", "99999999999999999999", "1e-400")
	f.Fuzz(func(t *testing.T, user, k, maxPrice string) {
		app, _ := sharedApp(t)
		q := url.Values{"user": {user}, "k": {k}}
		if maxPrice != "" {
			q.Set("max_price", maxPrice)
		}
		w := httptest.NewRecorder()
		app.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/recommend?"+q.Encode(), nil))
		requireClientAnswer(t, w)
		requireRanked(t, w, []byte(q.Encode()))
	})
}

// requireRanked checks a successful answer: at most Candidates items,
// distinct, best first.
func requireRanked(t *testing.T, w *httptest.ResponseRecorder, input []byte) {
	t.Helper()
	if w.Code != http.StatusOK {
		return
	}
	var rec recommendation
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &rec), "%s -> %s", input, w.Body.String())
	require.LessOrEqual(t, len(rec.Items), small.withDefaults().Candidates)
	seen := map[string]bool{}
	for i, it := range rec.Items {
		require.False(t, seen[it.Item], "duplicate %s", it.Item)
		seen[it.Item] = true
		if i > 0 {
			require.GreaterOrEqual(t, rec.Items[i-1].Score, it.Score)
		}
	}
	require.True(t, slices.Contains([]string{aliasProduction, aliasCanary}, rec.Variant) || len(rec.Items) == 0, rec.Variant)
}
