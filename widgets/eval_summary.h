#pragma once
// What one evaluation measured, as the results summary, the status bar and Compare show it: core's KlReport
// numbers copied out unchanged, with the bits they were measured at and the protocol (which text, how many
// tokens, which windows). Two KL numbers are comparable only under the same protocol; this says when not.
// Torch-free: the session fills these from core's report (workbench_session.cpp, run_comparison.cpp).
#include <QString>

namespace quench {
struct EvalProtocol;
}

namespace quench::gui {

// The evaluation protocol of a KL number: core's EvalProtocol plus the evaluation text it scored.
struct EvalProtocolView {
    qint64 textTokens = 0;    // tokens of the text after the eval-token cut
    qint64 scoredTokens = 0;  // next-token predictions that count
    qint64 ctx = 0, stride = 0;
    bool bosPerWindow = false;
    QString file;    // the evaluation text as recorded (path); empty when unknown
    QString sha256;  // its digest as recorded; empty when unknown (the session's own evaluations)
    // "2048 tokens of eval.txt at ctx 256" (+ stride when windows overlap, + BOS per window when so).
    QString describe() const;
};
// Core's protocol as the views hold it; file and sha256 are left to the caller, who knows the text.
EvalProtocolView protocolView(const quench::EvalProtocol& p);
// Empty when a and b were measured the same way (same text, tokens and windows); else both protocols as a
// reader needs them: "A used 2048 tokens of eval.txt at ctx 256, B 37130 tokens of eval.txt at ctx 512"
// (names as given; the digests are added when two texts of one name differ).
QString protocolDifference(const EvalProtocolView& a, const EvalProtocolView& b, const QString& nameA = QStringLiteral("A"),
                           const QString& nameB = QStringLiteral("B"));

// The measured uniform setting (one candidate on every quantized layer) with the least KL predicted from
// sensitivity measurements at no more bits than the evaluated model; spec empty when there is none.
struct UniformPrediction {
    QString spec;
    double bitsPerWeight = 0;
    double predictedKl = 0;  // sum of the layers' measured KL contributions (the allocation's cost model)
};

struct EvalSummary {
    QString source;            // the job: "Quantize", "Apply allocation", "QAT", "Evaluate KL"
    int quantizedLayers = 0;
    double bitsPerWeight = 0;  // over the quantized layers (QuantizeResult::total_bits_per_weight); 0: none
    // core's KlReport, unchanged (nats per scored token; top-1 a fraction)
    double klMean = 0, klStderr = 0, klP99 = 0, top1 = 0, pplTest = 0, pplRef = 0;
    EvalProtocolView protocol;
    UniformPrediction uniform;
};

// v to `digits` significant digits in fixed notation ("5.40", "0.0123"); signed adds "+" to a positive v.
QString withDigits(double v, int digits, bool signed_ = false);
// Decimals withDigits uses for v.
int decimalsFor(double v, int digits);
// "0.478 ± 0.004": the mean to `digits` significant digits and the error to as many decimals.
QString klWithError(double mean, double stderr_, int digits);
// The status bar's line: "KL 0.478 ± 0.004 nats, top-1 87.1%, PPL 6.12 (fp 5.40) at 2.617 b/w".
QString summaryLine(const EvalSummary& e);

}  // namespace quench::gui
