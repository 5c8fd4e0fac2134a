#pragma once
// The learning rates QAT starts from (AdamW), in a header without LibTorch so that front-end headers can
// name them: qat/qat_trainer.h's QatOptions, the CLI's --lr / --scale-lr and the GUI's spin boxes read them
// from here or from a codec's row (CodecTraits::qat_defaults, qat_defaults(codec) in quant/codec_registry.h).

namespace quench {

struct QatDefaults {
    double lr = 1e-4;        // latent weights
    double scale_lr = 1e-3;  // scales, affine maps, input transforms
};

}  // namespace quench
