#pragma once
// The workbench's document (Tiled's MapDocument): the loaded model and tokenizer, the data settings, the
// latest quantize / sensitivity / evaluation results and the user's allocation constraints. Every engine
// operation is a method that queues a job on the JobQueue: the job calls core's function for its kind
// (core/jobs/recorded_jobs.h, the ones quench-cli calls, which also write the run) and hands the result back
// on the GUI thread, where the matching signal tells the panels. Torch stays in the .cpp: this header names
// core's result types only by declaration.
#include <QObject>
#include <QString>
#include <QStringList>

#include <map>
#include <memory>
#include <vector>

#include "alloc/allocation_spec.h"
#include "eval_summary.h"
#include "model/layer_registry.h"
#include "quant/qat_defaults.h"

namespace quench {
class Tokenizer;
struct Allocation;
struct KlReport;
struct LayerResult;
class Measurements;
struct QuantizedTensor;
}  // namespace quench

namespace quench::gui {

class JobQueue;
class JobRunner;

// Where the calibration and evaluation tokens come from and how the model is run on them.
struct DataSettings {
    QString calibPath, evalPath;
    qint64 calibTokens = 4096;  // calibration tokens used (GPTQ Hessians, output error, sensitivity capture)
    qint64 evalTokens = 2048;   // evaluation tokens used (KL, perplexity, sensitivity KL sample)
    qint64 context = 0;         // window length; 0 = min(model max positions, 512)
    // Quantize and apply calibrate a block's layers on the outputs of the quantized blocks before it (GPTQ's
    // sequential order, core's default), or on the full-precision model's (quench-cli --calib-inputs fp).
    bool calibOnQuantized = true;
};

// One quantized layer's numbers as the panels show them (torch-free copy of quench::LayerResult).
struct LayerOutcome {
    QString spec;
    double bitsPerWeight = 0;    // total bits per weight (codes, scales, ...)
    double relError = 0;         // ||W - W'||_F / ||W||_F
    double sqnrDb = 0;
    double outputRelError = -1;  // on calibration rows; -1 without calibration text
};

// The QAT section of the method panel.
struct QatRequest {
    bool blockwise = false;   // false: end-to-end
    QString tokens;           // budget as core parses it: "200k", "10%@train"
    double lr = quench::QatDefaults{}.lr, scaleLr = quench::QatDefaults{}.scale_lr;  // the panel fills in the codec's
    QString checkpointDir;    // where the trainer saves resumable checkpoints; empty: none
    bool resume = false;      // continue the checkpoint in checkpointDir (a cancelled run) instead of starting
};

// The latest QAT run's whole curve (a resumed run's includes the steps before the checkpoint).
struct QatCurve {
    std::vector<qint64> steps, klSteps;
    std::vector<double> losses, klValues;
    qint64 totalSteps = 0, resumedFrom = 0;
};
// The file core's trainer keeps in a checkpoint directory (core/qat/qat_checkpoint.h, qat_checkpoint_path).
QString qatCheckpointFile(const QString& dir);

enum class ExportFormat { Packed = 1, Hf, Gguf };

struct ExportRequest {
    ExportFormat format = ExportFormat::Packed;
    QString path;          // directory (packed, hf) or .gguf file
    bool replace = false;  // replace an earlier export at path
    bool bf16 = false;     // hf: BF16 instead of F16
    QString ggufType;      // gguf: default ggml type name; empty = nearest to each layer's codec
};

class WorkbenchSession : public QObject {
    Q_OBJECT

public:
    explicit WorkbenchSession(JobQueue* jobs, QObject* parent = nullptr);
    ~WorkbenchSession() override;

    JobQueue* jobs() const { return jobs_; }
    bool hasModel() const;
    QString modelDir() const;
    QString modelSummary() const;                // "LlamaForCausalLM, 2 blocks, 656k params"
    const quench::LayerRegistry& layers() const;  // empty without a model
    int64_t maxPositions() const;

    DataSettings& data() { return data_; }
    const DataSettings& data() const { return data_; }
    qint64 calibTokenCount() const { return calibCount_; }  // -1 until counted
    qint64 evalTokenCount() const { return evalCount_; }
    QString projectPath() const { return projectPath_; }  // .h5 file runs are recorded in; empty = none
    void setProjectPath(const QString& path) { projectPath_ = path; }

    // Latest results (empty until a job produced them).
    const std::vector<quench::LayerResult>& layerResults() const;
    const quench::Measurements& measurements() const;
    bool hasKl() const;
    const quench::KlReport& klReport() const;
    std::map<std::size_t, LayerOutcome> layerOutcomes() const;  // by registry index
    QStringList measuredSpecs(const QString& layer) const;      // available sensitivity candidates
    double totalBitsPerWeight() const;  // of the latest quantize result; 0 without one
    const quench::Tokenizer* tokenizer() const;             // nullptr without a model
    const std::vector<int32_t>& evaluatedTokens() const;    // the text the latest KL report scored
    std::vector<float> originalWeights(std::size_t layer) const;  // full-precision weights, row-major
    // The latest quantize (or QAT) result of a layer; nullptr when it is not quantized.
    const quench::QuantizedTensor* quantizedTensor(std::size_t layer) const;
    const QatCurve& qatCurve() const { return qatCurve_; }
    QString lastRunId() const { return lastRunId_; }  // the latest run recorded in the project file
    // Every evaluation of the loaded model (quantize, apply and QAT with evaluation text, Evaluate KL), oldest
    // first, with core's numbers: the results summary shows the last one and its change from the one before.
    const std::vector<EvalSummary>& evaluations() const;
    // Among the measured sensitivity candidates, the uniform setting of `layers` with the least predicted KL
    // at no more than maxBpw bits per weight (bits as quantize counts them). Empty when the measurements do
    // not cover exactly those layers (a prediction for other layers would compare nothing).
    UniformPrediction bestUniform(double maxBpw, const std::vector<std::size_t>& layers) const;

    // Pins and per-layer bit ranges from the layer tree; they feed the allocation problem.
    quench::AllocConstraints& constraints() { return constraints_; }
    const quench::AllocConstraints& constraints() const { return constraints_; }
    // The measurements as an allocation problem with the constraints applied; throws quench::Error.
    quench::AllocationSpec allocationSpec() const;

    // Bits per weight a spec costs on the given layers (weighted by size), without quantizing. Throws
    // quench::Error for a bad spec or a shape the codec does not support.
    double estimateBitsPerWeight(const std::string& spec, const std::vector<std::size_t>& layers, bool afterQat = false) const;
    // Size estimate in bytes of an export of the current state (before writing).
    double estimateExportBytes(const ExportRequest& request) const;

    // Jobs. Each returns the queued job; errors arrive through its failed signal.
    JobRunner* loadModel(const QString& dir);
    JobRunner* countTokens();
    JobRunner* quantize(const std::vector<std::size_t>& layers, const QString& spec);
    JobRunner* applyAllocation(const quench::Allocation& allocation);
    JobRunner* measureSensitivity(const std::vector<std::size_t>& layers, const QStringList& candidates);
    JobRunner* evaluate();
    JobRunner* exportModel(const ExportRequest& request);
    // Fine-tunes the quantized layers (PTQ results of codecs with a QAT form) on the calibration text;
    // with request.resume, continues the checkpoint a cancelled run left in request.checkpointDir.
    JobRunner* trainQat(const QatRequest& request);

signals:
    void modelLoaded();
    void tokensCounted();
    void quantized();
    void sensitivityMeasured();
    void evaluated();
    void exported(const QString& path, qint64 bytes);
    void constraintsChanged();
    void qatStarted(bool resuming);
    // One training step (from the engine's callback, queued to the GUI thread); heldoutKl < 0: not measured.
    void qatStep(qint64 step, double loss, double heldoutKl);
    void qatFinished();  // qatCurve() holds the run's whole curve
    // A quantize, apply or QAT job finished without evaluation text, so its KL was not measured; why says so.
    void klSkipped(const QString& why);
    // A job recorded a run (complete, cancelled or failed) in the project file.
    void runRecorded(const QString& project, const QString& runId);

private:
    struct State;
    // Takes a quantize job's results into the session when it finishes; drops the old ones when it fails.
    void connectQuantizeJob(JobRunner* job, std::shared_ptr<State> state, std::shared_ptr<struct QuantizeOut> out,
                            const QString& source, const QString& evalPath);
    // After a job stored a KL report in the current state: appends it to evaluations() (GUI thread).
    void noteEvaluation(const QString& source, const QString& evalPath);
    // Says (klSkipped) that a job's result was not evaluated for want of evaluation text.
    void noteSkippedEvaluation();
    // Announces the run a job recorded (its id is set on the worker thread when the run begins).
    void announceRun(JobRunner* job, const QString& project, std::shared_ptr<std::string> runId);
    JobQueue* jobs_;
    std::shared_ptr<State> s_;  // shared with running jobs' continuations
    DataSettings data_;
    qint64 calibCount_ = -1, evalCount_ = -1;
    QString projectPath_, lastRunId_;
    quench::AllocConstraints constraints_;
    QatCurve qatCurve_;
    std::vector<EvalSummary> evaluations_;
    std::weak_ptr<State> evaluationsOf_;  // the model state evaluations_ describe (a new model starts afresh)
};

}  // namespace quench::gui
