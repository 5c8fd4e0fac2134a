// Each panel on its own, against a session holding the real tiny model: the layer tree and its selection
// modes and constraints, the data panel's settings and token counts (checked against core's tokenizer),
// the method form generated from the codec schema and its validation, the job list, the results panel's
// error path, the export dialog's size estimate and the Weights page's values for a vector codec.
// torch first: Qt's `slots` macro would otherwise break torch's ivalue headers.
#include <torch/torch.h>

#include <QCheckBox>
#include <QPlainTextEdit>
#include <QComboBox>
#include <QLineEdit>
#include <QDir>
#include <QFile>
#include <QMimeData>
#include <QPushButton>
#include <QSignalSpy>
#include <QSpinBox>
#include <QTemporaryDir>
#include <QTreeWidget>
#include <QtTest>

#include <thread>

#include "analysis/text_data.h"
#include "charts/weight_histogram.h"
#include "data_panel.h"
#include "error_reporter.h"
#include "export_dialog.h"
#include "gui_test_support.h"
#include "job_list_panel.h"
#include "job_queue.h"
#include "job_runner.h"
#include "common/progress.h"
#include "method_panel.h"
#include "model/tokenizer.h"
#include "model_panel.h"
#include "quant/codec.h"
#include "results_panel.h"
#include "weights_page.h"
#include "support/tiny_model.h"
#include "workbench_session.h"

using namespace quench::gui;

class TestPanels : public QObject {
    Q_OBJECT

    JobQueue* queue_ = nullptr;
    WorkbenchSession* session_ = nullptr;

private slots:
    void initTestCase() {
        test::isolateSettings();
        queue_ = new JobQueue(this);
        session_ = new WorkbenchSession(queue_, this);
        JobRunner* load = session_->loadModel(test::modelDir());
        QVERIFY(load->waitForEnd(20000));
        QCOMPARE(load->state(), JobRunner::State::Finished);
    }

    void modelPanelListsEveryLayerUnderItsBlock() {
        ModelPanel panel(session_);
        emit session_->modelLoaded();  // the panel was created after the load
        const auto& reg = session_->layers();
        int layers = 0;
        for (int b = 0; b < panel.tree()->topLevelItemCount(); ++b) {
            auto* block = panel.tree()->topLevelItem(b);
            for (int c = 0; c < block->childCount(); ++c, ++layers) {
                const auto& info = reg.at(std::size_t(layers));
                auto* item = block->child(c);
                QCOMPARE(item->text(ModelPanel::NameCol).toStdString(), info.name);
                QCOMPARE(item->text(ModelPanel::KindCol), QString::fromLatin1(quench::layer_kind_name(info.kind)));
                QCOMPARE(item->text(ModelPanel::ShapeCol), QStringLiteral("%1 x %2").arg(info.out_features).arg(info.in_features));
                QCOMPARE(item->text(ModelPanel::ParamsCol).toLongLong(), info.params());
            }
        }
        QCOMPARE(std::size_t(layers), reg.size());
    }

    void modelPanelSelectsByGlobRegexAndKind() {
        ModelPanel panel(session_);
        emit session_->modelLoaded();
        QSignalSpy changed(&panel, &ModelPanel::selectionChanged);
        QVERIFY(panel.selectByFilter(QStringLiteral("model.layers.*.mlp.*"), false));
        QCOMPARE(panel.selectedLayers(), session_->layers().select_glob("model.layers.*.mlp.*"));
        QVERIFY(changed.count() > 0);
        QVERIFY(panel.selectByFilter(QStringLiteral("layers\\.1\\..*_proj$"), true));
        QCOMPARE(panel.selectedLayers(), session_->layers().select_regex("layers\\.1\\..*_proj$"));
        panel.selectKind(QStringLiteral("down"));
        QCOMPARE(panel.selectedLayers(), session_->layers().select_kind(quench::LayerKind::Down));
        // A pattern matching nothing keeps the selection and shows core's message.
        QVERIFY(!panel.selectByFilter(QStringLiteral("nothing.matches.*"), false));
        QVERIFY(panel.filterMessage().contains(QStringLiteral("nothing.matches")));
        QCOMPARE(panel.selectedLayers(), session_->layers().select_kind(quench::LayerKind::Down));
        QVERIFY(!panel.selectByFilter(QStringLiteral("(unclosed"), true));
        // Clicking a block selects its layers.
        panel.tree()->clearSelection();
        panel.tree()->topLevelItem(0)->setSelected(true);
        QCOMPARE(int(panel.selectedLayers().size()), panel.tree()->topLevelItem(0)->childCount());
    }

    void modelPanelConstraintsFeedTheSession() {
        ModelPanel panel(session_);
        emit session_->modelLoaded();
        const QString layer = QString::fromStdString(session_->layers().at(0).name);
        panel.pinLayer(layer, QStringLiteral("rtn:b=8,g=32"));
        panel.setLayerBitsRange(layer, 3, 6);
        QCOMPARE(session_->constraints().pins.at(layer.toStdString()), std::string("rtn:b=8,g=32"));
        QCOMPARE(session_->constraints().layer_limits.at(layer.toStdString()).max_bits_per_weight, 6.0);
        auto* item = panel.tree()->topLevelItem(0)->child(0);
        QVERIFY(item->text(ModelPanel::ConstraintCol).contains(QStringLiteral("pinned rtn:b=8,g=32")));
        QVERIFY(item->text(ModelPanel::ConstraintCol).contains(QStringLiteral("bits 3..6")));
        panel.clearConstraints(layer);
        QVERIFY(session_->constraints().pins.empty());
        QVERIFY(item->text(ModelPanel::ConstraintCol).isEmpty());
    }

    void modelPanelAcceptsADroppedDirectory() {
        ModelPanel panel(session_);
        QSignalSpy open(&panel, &ModelPanel::openRequested);
        QMimeData mime;
        mime.setUrls({QUrl::fromLocalFile(test::modelDir() + QStringLiteral("/config.json"))});
        QVERIFY(panel.acceptDrops());
        QVERIFY(panel.handleDrop(&mime));
        QCOMPARE(open.count(), 1);
        // The panel reports the directory without ".." (symbolic links are kept as the user named them).
        QCOMPARE(open.at(0).at(0).toString(), QDir::cleanPath(test::modelDir()));
    }

    void dataPanelSettingsAndTokenCounts() {
        DataPanel panel(session_);
        panel.setCalibPath(test::calibText());
        panel.setEvalPath(test::evalText());
        panel.setCalibTokens(1000);
        panel.setContext(64);
        QCOMPARE(session_->data().calibPath, test::calibText());
        QCOMPARE(session_->data().calibTokens, 1000);
        QCOMPARE(session_->data().context, 64);
        QVERIFY(session_->data().calibOnQuantized);  // core's default
        panel.setCalibOnQuantized(false);
        QVERIFY(!session_->data().calibOnQuantized);
        panel.setCalibOnQuantized(true);
        JobRunner* count = session_->countTokens();
        QVERIFY(count->waitForEnd(20000));
        QCOMPARE(count->state(), JobRunner::State::Finished);
        const auto tok = quench::load_tokenizer(test::modelDir().toStdString());
        const auto calib = quench::tokenize_text_file(*tok, test::calibText().toStdString(), true);
        const auto eval = quench::tokenize_text_file(*tok, test::evalText().toStdString(), true);
        QCOMPARE(panel.calibCountText(), QString::number(calib.size()));
        QCOMPARE(panel.evalCountText(), QString::number(eval.size()));
    }

    void methodFormFollowsTheSchemaAndValidatesAsYouType() {
        MethodPanel panel(session_);
        QVERIFY(panel.isValid());
        panel.setSpecText(QStringLiteral("rtn:b=3,g=64"));
        QVERIFY(panel.isValid());
        QCOMPARE(panel.spec(), QStringLiteral("rtn:b=3,g=64"));
        QCOMPARE(panel.findChild<QSpinBox*>(QStringLiteral("b"))->value(), 3);
        QCOMPARE(panel.findChild<QComboBox*>(QStringLiteral("g"))->currentText(), QStringLiteral("64"));
        // Editing the form rewrites the text.
        panel.findChild<QCheckBox*>(QStringLiteral("sym"))->setChecked(true);
        QCOMPARE(panel.specEdit()->text(), QStringLiteral("rtn:b=3,g=64,sym"));
        // A bad value: core's message, the run button off.
        panel.setSpecText(QStringLiteral("rtn:b=9"));
        QVERIFY(!panel.isValid());
        QVERIFY2(panel.validationMessage().contains(QStringLiteral("b must be in")), qPrintable(panel.validationMessage()));
        QVERIFY(!panel.quantizeButton()->isEnabled());
        // Bits on chosen layers are core's estimate.
        const std::vector<std::size_t> layers{0, 1};
        panel.setLayersProvider([&] { return layers; });
        panel.setSpecText(QStringLiteral("rtn:b=4,g=32"));
        QCOMPARE(panel.bitsPerWeight(), session_->estimateBitsPerWeight("rtn:b=4,g=32", layers));
        QVERIFY(panel.bitsPerWeight() > 4.0 && panel.bitsPerWeight() < 5.0);
        // The QAT section's defaults.
        QVERIFY(panel.qatButton()->isEnabled());
        QCOMPARE(panel.qatRequest().tokens, QStringLiteral("200k"));
        QCOMPARE(panel.qatRequest().lr, 1e-4);
    }

    // Issue 16: a setting that cannot take some chosen layers says which, all of them, before any job runs.
    void bitsNameEveryLayerASettingCannotTake() {
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        // A tiny Llama whose 330-wide MLP input LC-QAT (4 weights per code) cannot take.
        const std::string tiny = quench::test::write_tiny_llama(dir.path().toStdString(), "tiny", 160, 330);
        // The workbench opens a model with its tokenizer: the real model's fits the tiny one's 2048 ids.
        QVERIFY(QFile::copy(test::modelDir() + QStringLiteral("/tokenizer.json"),
                            QString::fromStdString(tiny) + QStringLiteral("/tokenizer.json")));
        JobQueue queue;
        WorkbenchSession session(&queue);
        JobRunner* load = session.loadModel(QString::fromStdString(tiny));
        QVERIFY(load->waitForEnd(20000));
        QCOMPARE(load->state(), JobRunner::State::Finished);
        std::vector<std::size_t> all(session.layers().size());
        for (std::size_t i = 0; i < all.size(); ++i) all[i] = i;
        MethodPanel panel(&session);
        panel.setLayersProvider([&] { return all; });
        panel.setSpecText(QStringLiteral("lcqat:hessian=0"));
        const QString text = panel.bitsText();
        QVERIFY2(text.contains(QStringLiteral("2 of %1 layers cannot take their setting").arg(all.size())), qPrintable(text));
        QVERIFY2(text.contains(QStringLiteral("model.layers.0.mlp.down_proj (lcqat")), qPrintable(text));
        QVERIFY2(text.contains(QStringLiteral("model.layers.1.mlp.down_proj")), qPrintable(text));
        QVERIFY2(text.contains(QStringLiteral("cols 330 is not a multiple of 4")), qPrintable(text));
        // Without those two, the estimate is core's bits.
        std::vector<std::size_t> fit;
        for (std::size_t i : all)
            if (session.layers().at(i).in_features != 330) fit.push_back(i);
        panel.setLayersProvider([&] { return fit; });
        panel.setSpecText(QStringLiteral("lcqat:hessian=0,had=64"));
        QCOMPARE(panel.bitsPerWeight(), session.estimateBitsPerWeight("lcqat:hessian=0,had=64", fit));
    }

    void methodFormSwitchesCodec() {
        MethodPanel panel(session_);
        auto* codec = panel.findChildren<QComboBox*>().first();
        codec->setCurrentText(QStringLiteral("gptq"));
        QVERIFY(panel.spec().startsWith(QStringLiteral("gptq:")));
        QVERIFY(!panel.candidates().isEmpty());
        QVERIFY(panel.candidates().first().startsWith(QStringLiteral("gptq:")));
    }

    void jobListShowsProgressStateAndCancels() {
        JobQueue queue;
        JobListPanel panel(&queue);
        queue.enqueue(QStringLiteral("quick"), [](quench::ProgressSink& p) { p.report(0.5, "half"); });
        QVERIFY(queue.waitForIdle(5000));
        QCOMPARE(panel.rowCount(), 1);
        QCOMPARE(panel.stateText(0), QStringLiteral("finished"));
        QCOMPARE(panel.progressPercent(0), 100);
        queue.enqueue(QStringLiteral("slow"), [](quench::ProgressSink& p) {
            for (int i = 0; i < 5000; ++i) {
                p.check();
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
            }
        });
        QTest::qWait(30);
        panel.cancelRow(1);
        QVERIFY(queue.waitForIdle(5000));
        QCOMPARE(panel.stateText(1), QStringLiteral("cancelled"));
        QVERIFY(panel.logView()->toPlainText().contains(QStringLiteral("cancelled")));
    }

    void resultsPanelReportsABadFile() {
        QWidget host;
        ErrorReporter errors(&host);
        QStringList shown;
        errors.setHandler([&](const QString&, const QString& m) { shown << m; });
        ResultsPanel panel(&errors);
        QTemporaryDir tmp;
        const QString bad = tmp.filePath(QStringLiteral("not-a-project.h5"));
        QFile f(bad);
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write("this is not HDF5");
        f.close();
        QVERIFY(!panel.openFile(bad));
        QVERIFY(!panel.openFile(tmp.filePath(QStringLiteral("missing.h5"))));
        QCOMPARE(shown.size(), 2);
        QVERIFY2(shown[0].contains(QStringLiteral("not-a-project.h5")), qPrintable(shown[0]));
        QCOMPARE(panel.runCount(), 0);
    }

    void exportDialogEstimatesBeforeWriting() {
        ExportDialog dialog(session_);
        dialog.setFormat(ExportFormat::Hf);
        const double hf = dialog.estimatedBytes();
        dialog.setFormat(ExportFormat::Packed);
        const double packed = dialog.estimatedBytes();
        // Nothing quantized: packed copies the F32 checkpoint, HF stores FP16, exactly half.
        QVERIFY(hf > 0);
        QCOMPARE(packed, 2 * hf);
        dialog.setFormat(ExportFormat::Gguf);
        QVERIFY(dialog.estimatedBytes() > 0);
        QVERIFY(!dialog.estimateText().isEmpty());
        dialog.setPath(QStringLiteral("/tmp/x.gguf"));
        QCOMPARE(dialog.request().format, ExportFormat::Gguf);
        QCOMPARE(dialog.request().path, QStringLiteral("/tmp/x.gguf"));
    }

    // Last: it quantizes a layer of the shared session. A vector codec has no per-group grid: the Weights
    // page draws the distinct values the chosen row dequantizes to (core's dequantize), thinned to 256.
    void weightsPageShowsAVectorCodecsRowValues() {
        WeightsPage page(session_);
        JobRunner* job = session_->quantize({0}, QStringLiteral("liftquant:D=16,d=8"));
        QVERIFY(job->waitForEnd(30000));
        QVERIFY2(job->state() == JobRunner::State::Finished, qPrintable(job->errorMessage()));
        page.showLayer(0);
        const quench::QuantizedTensor* q = session_->quantizedTensor(0);
        QVERIFY(q);
        QCOMPARE(page.groupSpin()->maximum(), int(q->rows - 1));  // one "group" per row
        page.groupSpin()->setValue(3);
        QCOMPARE(page.groupRow(), int64_t(3));
        const at::Tensor row = quench::make_codec(q->spec)->dequantize(*q)[3].contiguous();
        std::vector<double> values(row.data_ptr<float>(), row.data_ptr<float>() + row.numel());
        std::sort(values.begin(), values.end());
        values.erase(std::unique(values.begin(), values.end()), values.end());
        const WeightHistogram* h = page.histogram();
        QCOMPARE(std::size_t(h->levelCount()), std::min(values.size(), WeightsPage::kMaxLevels));
        for (int i = 0; i < h->levelCount(); ++i)
            QVERIFY2(std::binary_search(values.begin(), values.end(), h->level(i)), qPrintable(QString::number(h->level(i))));
        QCOMPARE(h->level(0), values.front());
        QCOMPARE(h->level(h->levelCount() - 1), values.back());
        QVERIFY(page.levelsText().contains(QStringLiteral("no per-group grid")));
    }
};

QTEST_MAIN(TestPanels)
#include "test_panels.moc"
