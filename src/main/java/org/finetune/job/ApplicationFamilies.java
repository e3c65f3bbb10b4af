package org.finetune.job;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.function.Supplier;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.finetune.data.ImageOps.Preprocess;
import org.finetune.graph.ClassifierTop;
import org.finetune.graph.OpDefs;
import org.finetune.model.FlatSignature;
import org.finetune.savedmodel.ModelInfo;
import org.finetune.savedmodel.TensorNames;
import org.finetune.savedmodel.VariableInfo;

/**
 * The {@code keras.applications} families, recognised by the names Keras gives their layers.
 * Each has the preprocessing of its module's {@code preprocess_input} ({@code none} where the
 * model preprocesses its own input: EfficientNet, MobileNetV3, ConvNeXt, RegNet), the layer whose
 * output {@code include_top=False} returns (the features a new head takes), and layer groups for
 * gradual unfreezing, top first. A group is a named block or a regular expression over layer
 * names; where Keras numbers layers by creation (residual shortcuts, cells), it is the name of an
 * unweighted layer at a stage boundary, selecting every layer used after it.
 */
final class ApplicationFamilies {
  private ApplicationFamilies() {}

  private static final Pattern NUMBERED = Pattern.compile("expanded_conv_(\\d+)_.*");
  private static final Pattern STAGE = Pattern.compile("block(\\d)[a-z]_.*");
  private static final Pattern NORMAL_CELL = Pattern.compile("normal_conv_1_(\\d+)");
  private static final Pattern REDUCTION_CELL = Pattern.compile("reduction_conv_1_reduce_(\\d+)");

  /**
   * The family of a model with these weight layers, else empty; {@code flat} (its selected
   * signature flattened) is asked for only where the names do not tell the feature layer.
   */
  static Optional<ModelFamily> detect(ModelInfo info, Supplier<FlatSignature> flat, List<String> layers) {
    Set<String> has = Set.copyOf(layers);
    if (has.contains("block1_conv1") && has.contains("block5_conv4")) {
      return known("VGG19", Preprocess.CAFFE, "block5_pool", "block5", "block4", "block3", "block2", "block1");
    }
    if (has.contains("conv1_conv") && has.contains("conv5_block1_0_conv") && has.contains("conv1_bn")
        && !has.contains("post_bn")) {
      return known("ResNet", Preprocess.CAFFE, "conv5_block3_out", "conv5", "conv4", "conv3", "conv2", "conv1");
    }
    if (has.contains("conv1_conv") && has.contains("post_bn") && has.contains("conv5_block1_0_conv")) {
      return known("ResNetV2", Preprocess.TF, "post_relu", "regex:conv5_.*|post_bn", "conv4", "conv3", "conv2", "conv1");
    }
    if (has.contains("conv1_conv") && has.contains("pool2_conv") && has.contains("bn")) {
      return known("DenseNet", Preprocess.TORCH, "relu", "regex:conv5_.*|pool4_.*|bn", "regex:conv4_.*|pool3_.*",
          "regex:conv3_.*|pool2_.*", "conv2", "conv1");
    }
    if (has.contains("conv_7b") && has.contains("block35_1_conv") && has.contains("block8_1_conv")) {
      return known("InceptionResNetV2", Preprocess.TF, "conv_7b_ac", "mixed_7a", "mixed_6a", "mixed_5b");
    }
    if (has.contains("block1_conv1") && has.contains("block1_conv1_bn") && has.contains("block14_sepconv2")) {
      return known("Xception", Preprocess.TF, "block14_sepconv2_act", "block13_pool", "block12_sepconv3_act",
          "block8_sepconv3_act", "block4_pool", "block2_pool");
    }
    if (has.contains("conv1") && has.contains("conv_dw_13") && has.contains("conv_pw_13")) {
      return known("MobileNet", Preprocess.TF, "conv_pw_13_relu", "conv_pw_11_relu", "conv_pw_5_relu", "conv_pw_3_relu",
          "conv_pw_1_relu");
    }
    if (has.contains("Conv1") && has.contains("block_16_project") && has.contains("Conv_1")) {
      return known("MobileNetV2", Preprocess.TF, "out_relu", "block_15_add", "block_12_add", "block_9_add", "block_5_add",
          "block_2_add");
    }
    if (has.contains("conv") && has.contains("conv_1") && has.contains("expanded_conv_project")) {
      return Optional.of(new ModelFamily("MobileNetV3", Optional.of(Preprocess.NONE), beforePooling(info, flat),
          mobileNetV3Groups(layers)));
    }
    if (has.contains("stem_conv") && has.contains("top_conv") && has.contains("block1a_project_conv")) {
      return Optional.of(new ModelFamily(has.contains("block1a_dwconv") ? "EfficientNet" : "EfficientNetV2",
          Optional.of(Preprocess.NONE), Optional.of("top_activation"), efficientNetGroups(layers)));
    }
    if (has.contains("stem_conv1") && layers.stream().anyMatch(l -> l.startsWith("normal_conv_1_"))) {
      return Optional.of(new ModelFamily("NASNet", Optional.of(Preprocess.TF), beforePooling(info, flat),
          nasNetGroups(layers)));
    }
    Optional<String> convnext = prefix(layers, "(.*)_stage_0_block_0_depthwise_conv");
    if (convnext.isPresent() && has.contains(convnext.get() + "_stem")) {
      String p = Pattern.quote(convnext.get());
      String head = convnext.get() + "_head_layernorm";
      return Optional.of(new ModelFamily("ConvNeXt", Optional.of(Preprocess.NONE),
          has.contains(head) ? Optional.of(head) : beforePooling(info, flat),
          List.of("regex:" + p + "_(stage_3_.*|downsampling_block_2|head_layernorm)",
              "regex:" + p + "_(stage_2_.*|downsampling_block_1)", "regex:" + p + "_(stage_1_.*|downsampling_block_0)",
              "regex:" + p + "_(stage_0_.*|stem)")));
    }
    Optional<String> regnet = prefix(layers, "(.*)_Stage_0_[XY]Block_0_conv_3x3");
    if (regnet.isPresent() && has.contains(regnet.get() + "_stem_conv")) {
      String p = regnet.get();
      Pattern last = Pattern.compile(Pattern.quote(p) + "_Stage_3_([XY])Block_(\\d+)_.*");
      String kind = "X";
      int block = -1;
      for (String l : layers) {
        Matcher m = last.matcher(l);
        if (m.matches() && Integer.parseInt(m.group(2)) > block) {
          block = Integer.parseInt(m.group(2));
          kind = m.group(1);
        }
      }
      String q = Pattern.quote(p);
      return Optional.of(new ModelFamily("RegNet", Optional.of(Preprocess.NONE),
          Optional.of(p + "_Stage_3_" + kind + "Block_" + block + "_exit_relu"),
          List.of("regex:" + q + "_Stage_3_.*", "regex:" + q + "_Stage_2_.*", "regex:" + q + "_Stage_1_.*",
              "regex:" + q + "_(Stage_0_.*|stem_.*)")));
    }
    return Optional.empty();
  }

  private static Optional<ModelFamily> known(String name, Preprocess preprocess, String features, String... groups) {
    return Optional.of(new ModelFamily(name, Optional.of(preprocess), Optional.of(features), List.of(groups)));
  }

  private static Optional<String> prefix(List<String> layers, String regex) {
    Pattern p = Pattern.compile(regex);
    for (String l : layers) {
      Matcher m = p.matcher(l);
      if (m.matches()) {
        return Optional.of(m.group(1));
      }
    }
    return Optional.empty();
  }

  /** The largest number group 1 of {@code pattern} matches in a layer name, at least {@code least}. */
  private static int largest(List<String> layers, Pattern pattern, int least) {
    int largest = least;
    for (String l : layers) {
      Matcher m = pattern.matcher(l);
      if (m.matches()) {
        largest = Math.max(largest, Integer.parseInt(m.group(1)));
      }
    }
    return largest;
  }

  /** MobileNetV3's inverted-residual blocks in four groups, top first (the last conv with the top one). */
  private static List<String> mobileNetV3Groups(List<String> layers) {
    int last = largest(layers, NUMBERED, 0);
    List<String> groups = new ArrayList<>();
    int[] bounds = {last + 1, (3 * last + 3) / 4, (last + 1) / 2, (last + 1) / 4, 1};
    for (int g = 0; g < 4; g++) {
      List<String> numbers = new ArrayList<>();
      for (int i = bounds[g + 1]; i < bounds[g]; i++) {
        numbers.add(Integer.toString(i));
      }
      String blocks = numbers.isEmpty() ? null : "expanded_conv_(" + String.join("|", numbers) + ")_.*";
      String extra = g == 0 ? "conv_1(_bn)?" : g == 3 ? "conv|conv_bn|expanded_conv_[a-z].*" : null;
      String regex = blocks == null ? extra : extra == null ? blocks : extra + "|" + blocks;
      if (regex != null) {
        groups.add("regex:" + regex);
      }
    }
    return groups;
  }

  /**
   * NASNet's cells, top first: above the last normal cell's input, above each reduction cell, above
   * the stem's second reduction.
   */
  private static List<String> nasNetGroups(List<String> layers) {
    int last = largest(layers, NORMAL_CELL, 0);
    List<Integer> reductions = new ArrayList<>();
    for (String l : layers) {
      Matcher m = REDUCTION_CELL.matcher(l);
      if (m.matches() && !reductions.contains(Integer.parseInt(m.group(1)))) {
        reductions.add(Integer.parseInt(m.group(1)));
      }
    }
    reductions.sort(java.util.Comparator.reverseOrder());
    List<String> groups = new ArrayList<>();
    groups.add("normal_concat_" + (last - 1));
    reductions.forEach(r -> groups.add("reduction_concat_reduce_" + r));
    groups.add("reduction_concat_stem_2");
    return groups;
  }

  /** EfficientNet's stages, top first: the top conv with the last stage, the stem with the first. */
  private static List<String> efficientNetGroups(List<String> layers) {
    int last = largest(layers, STAGE, 1);
    List<String> groups = new ArrayList<>();
    for (int s = last; s >= 1; s--) {
      String stage = "block" + s + "[a-z]_.*";
      groups.add("regex:" + (s == last ? "top_.*|" : "") + stage + (s == 1 ? "|stem_.*" : ""));
    }
    return groups;
  }

  /**
   * The layer whose output the top's global pooling takes, found in the signature's graph by
   * walking back from its output to the classifier and on to the nearest pooling; empty when there
   * is no such path or no layer outputs exactly that tensor.
   */
  static Optional<String> beforePooling(ModelInfo info, Supplier<FlatSignature> flat) {
    return classifierTop(info, flat.get()).flatMap(top -> top.unpooled().flatMap(t -> layerOutputting(flat.get(), t)));
  }

  /** The final classifier of the model's selected signature (see {@link ClassifierTop#find}). */
  static Optional<ClassifierTop> classifierTop(ModelInfo info, FlatSignature flat) {
    if (flat.outputs().size() != 1) {
      return Optional.empty();
    }
    Map<String, String> readLayers = new HashMap<>();
    for (VariableInfo v : info.variables()) {
      String read = flat.reads().get(v.handle());
      if (read != null && v.weight()) {
        readLayers.put(TensorNames.nodeOf(flat.local(read)), v.layer());
      }
    }
    return ClassifierTop.find(flat.graphDef(), flat.local(flat.outputs().values().iterator().next()), readLayers);
  }

  /** The layer of the flat signature whose output is {@code tensor} (a local name). */
  static Optional<String> layerOutputting(FlatSignature flat, String tensor) {
    return ClassifierTop.layerOutputting(flat.graphDef(), tensor, flat.inputNodes(),
        flat.outputs().values().stream().map(flat::local).toList(), OpDefs.runtime());
  }
}
