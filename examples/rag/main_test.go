package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRetrieveFindsTheRightDocument(t *testing.T) {
	want := []string{"tides", "honeybees", "raft", "sourdough", "vector-search"}
	answers, err := retrieve(context.Background(), defaultQuestions, 2)
	require.NoError(t, err)
	require.Len(t, answers, len(want))
	for i, a := range answers {
		require.NotEmpty(t, a.Hits)
		require.Equal(t, want[i], a.Hits[0].DocID, "question %q", a.Question)
	}
}

func TestRunPrintsAnswers(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, run(context.Background(), &buf, []string{"waggle dance direction"}, 1))
	out := buf.String()
	require.True(t, strings.HasPrefix(out, "Q: waggle dance direction\n  1. [honeybees, bytes "), out)
}

func TestRunExplainsUnknownWords(t *testing.T) {
	var buf bytes.Buffer
	questions := []string{"xylophone quux zzyzx", "what is the", "waggle dance direction"}
	require.NoError(t, run(context.Background(), &buf, questions, 1))
	out := buf.String()
	require.Equal(t, 2, strings.Count(out, "none of these words occur in the documents"), out)
	require.Contains(t, out, "Q: waggle dance direction\n  1. [honeybees, bytes ", "later questions still get answers")
}
