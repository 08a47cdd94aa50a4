package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
)

// maxGradeBody bounds a grading request (one response to grade).
const maxGradeBody = 4 << 20

// GradeRequest is the body of POST /grade.
type GradeRequest struct {
	Benchmark string `json:"benchmark"`
	SampleID  string `json:"sample_id"`
	Response  string `json:"response"`
}

// GradeResponse is the answer of POST /grade: the grade, nothing of the
// judge's own text.
type GradeResponse struct {
	Benchmark string `json:"benchmark"`
	SampleID  string `json:"sample_id"`
	Grade     Grade  `json:"grade"`
}

func (g *Gateway) serveGrade(w http.ResponseWriter, r *http.Request) {
	start := g.now()
	rec := &GradeRecord{Time: g.stamp(start)}
	fail := func(status int, msg string) {
		rec.Status = status
		if rec.Error == "" {
			rec.Error = msg
		}
		rec.DurationMS = ms(g.now().Sub(start))
		b, _ := json.Marshal(map[string]string{"error": "ptb gateway: " + msg})
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write(b)
		g.gradeLog.write(rec)
	}
	if g.cfg.Grader == nil {
		fail(http.StatusNotFound, "no grader in this run (only LLM-judged benchmarks have one)")
		return
	}
	if r.Method != http.MethodPost {
		fail(http.StatusMethodNotAllowed, "POST a JSON {benchmark, sample_id, response}")
		return
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxGradeBody+1))
	if err != nil || len(b) > maxGradeBody {
		fail(http.StatusBadRequest, fmt.Sprintf("request body unreadable or over %d bytes", maxGradeBody))
		return
	}
	var req GradeRequest
	dec := json.NewDecoder(bytesReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		fail(http.StatusBadRequest, "body: "+err.Error()+"; want a JSON {benchmark, sample_id, response}")
		return
	}
	sum := sha256.Sum256([]byte(req.Response))
	rec.Benchmark, rec.SampleID = req.Benchmark, req.SampleID
	rec.ResponseSHA256, rec.ResponseBytes = hex.EncodeToString(sum[:]), len(req.Response)
	if req.Benchmark == "" || req.SampleID == "" {
		fail(http.StatusBadRequest, "benchmark and sample_id are required")
		return
	}
	if lim := g.cfg.GradeLimit; lim > 0 {
		g.mu.Lock()
		over := g.grades >= lim
		if !over {
			g.grades++
		}
		g.mu.Unlock()
		if over {
			fail(http.StatusTooManyRequests, fmt.Sprintf("this run's limit of %d grading requests is reached", lim))
			return
		}
	}
	gr, err := g.cfg.Grader.Grade(r.Context(), req.Benchmark, req.SampleID, req.Response)
	if err == nil && (math.IsNaN(gr.Score) || math.IsInf(gr.Score, 0)) {
		err = errors.New("grader returned a non-finite score")
	}
	if err != nil {
		// The grader's error may quote the judge; the sandbox gets none of it.
		rec.Error = err.Error()
		fail(http.StatusBadGateway, "grading failed (the reason is in the run's gateway log)")
		return
	}
	rec.Status, rec.Score, rec.Label = http.StatusOK, &gr.Score, gr.Label
	rec.DurationMS = ms(g.now().Sub(start))
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(GradeResponse{Benchmark: req.Benchmark, SampleID: req.SampleID, Grade: gr})
	g.gradeLog.write(rec)
}
