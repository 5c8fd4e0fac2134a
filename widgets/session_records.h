#pragma once
// How the workbench's jobs record themselves in the project file (.h5 run store): the run kinds and core
// record writers quench-cli uses (app/cli/run_recording.cpp, core/io/run_records.h, core/io/alloc_records.h),
// so a run made in the window reads back like one made on the command line. Eval and export, which the CLI
// does not record, get the same provenance records plus their results (docs/hdf5-schema.md).
// Everything here runs on a job's worker thread.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "io/run_store.h"

namespace quench {
class LlamaModel;
class Measurements;
struct DataProvenance;
struct KlReport;
struct QatResult;
struct QuantizeResult;
struct SensitivityStats;
}  // namespace quench

namespace quench::gui {

// "quench (GUI): <what>", the command line a GUI run records.
std::string gui_command(const std::string& what);

// quench::run_recorded (io/run_records.h) with a GUI command line; *run_id gets the run's id as soon as it
// begins.
void run_recorded(const std::string& project, const std::string& kind, const std::string& what,
                  std::shared_ptr<std::string> run_id, const std::function<void(RunWriter*)>& work);

// One writer per kind; each records model provenance (sha256 of the model files) and the data used.
// quantize / apply: as `quench-cli quantize --out` (per-layer table, tensors, KL when evaluated).
void record_quantize(RunWriter& run, const LlamaModel& model, const std::vector<DataProvenance>& data,
                     const QuantizeResult& result, const KlReport* kl, const std::string& codec);
// sensitivity: as `quench-cli sensitivity --out` (tables "rd" and "sensitivity", the run's statistics).
void record_sensitivity(RunWriter& run, const LlamaModel& model, const std::vector<DataProvenance>& data,
                        const Measurements& m, const SensitivityStats& stats, const std::vector<std::string>& candidates,
                        const std::vector<std::string>& layers);
// eval: the KL report (table "kl" and its per-token array) and, when layers are quantized, their table.
void record_eval(RunWriter& run, const LlamaModel& model, const DataProvenance& text, const KlReport& kl,
                 const QuantizeResult& current);
// export: what was written (attrs format, out, bytes and the exporter's report) and the layers it holds.
void record_export(RunWriter& run, const LlamaModel& model, const Attrs& report, const Table* fallbacks,
                   const QuantizeResult& current);
// qat: as `quench-cli qat --out` (tables "qat_loss", "qat_kl", the trained layers and tensors, and the trained
// model's KL report "kl" when evaluated), less the PTQ-init report "kl_ptq" the GUI job does not measure.
void record_qat(RunWriter& run, const LlamaModel& model, const std::vector<DataProvenance>& data,
                const QatResult& r, const QuantizeResult& trained, const KlReport* report, const Attrs& settings);

}  // namespace quench::gui
