// Short layer names for chart axes and table rows: the block and the module, nothing a reader must skip.
#include <gtest/gtest.h>

#include "model/layer_registry.h"

using quench::short_layer_name;

TEST(ShortLayerName, BlockAndModule) {
    EXPECT_EQ(short_layer_name("model.layers.0.self_attn.q_proj"), "0.q");
    EXPECT_EQ(short_layer_name("model.layers.31.mlp.down_proj"), "31.down");
    EXPECT_EQ(short_layer_name("model.layers.12.mlp.gate_proj.weight"), "12.gate");
    EXPECT_EQ(short_layer_name("model.layers.2.self_attn.qkv_proj"), "2.qkv");  // fused projections keep their name
}

TEST(ShortLayerName, NamesOutsideBlocksStayWhole) {
    EXPECT_EQ(short_layer_name("lm_head"), "lm_head");
    EXPECT_EQ(short_layer_name("lm_head.weight"), "lm_head");
    EXPECT_EQ(short_layer_name("model.norm"), "model.norm");
    EXPECT_EQ(short_layer_name("model.layers.x.mlp.up_proj"), "model.layers.x.mlp.up_proj");  // no block number
    EXPECT_EQ(short_layer_name("model.mylayers.3.up_proj"), "model.mylayers.3.up_proj");      // not "layers."
    EXPECT_EQ(short_layer_name("model.layers.7"), "model.layers.7");                          // no module
}
