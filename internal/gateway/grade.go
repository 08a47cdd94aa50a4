package gateway

import "net/http"

func (g *Gateway) serveGrade(w http.ResponseWriter, r *http.Request) {
	http.Error(w, "ptb gateway: grading route not yet implemented", http.StatusNotImplemented)
}
