package org.finetune.cli;

import java.util.List;
import java.util.Optional;
import org.finetune.data.ImageOps;
import org.finetune.graph.LayerScopes;
import org.finetune.model.KerasSavedModel;
import org.finetune.savedmodel.LayerInfo;
import org.finetune.savedmodel.SignatureInfo;
import org.finetune.savedmodel.TensorSpec;

/** What the image commands need to know about a model: its image input, family and conventions. */
record ImageModels(String input, int height, int width, String family, ImageOps.Preprocess preprocess,
    Optional<String> featuresAt, List<String> groups, int frames) {

  /**
   * Reads the signature's image input ({@code [batch, height, width, 3]}) and recognises the
   * family by its layers: VGG16 ("caffe" preprocessing, features at {@code block5_pool}, blocks
   * 5..1 as unfreezing groups), InceptionV3 ("tf", {@code mixed10}, the mixed blocks from the top).
   * A video model of ours takes clips, {@code [batch, frames, height, width, 3]}: then
   * {@link #frames()} is the clip length (0 for image models).
   */
  static ImageModels of(KerasSavedModel model, Optional<int[]> size) {
    SignatureInfo sig = model.info().selectedSignature();
    if (sig.inputs().size() != 1) {
      throw new UsageException("an image model takes one input; signature " + sig.name() + " takes "
          + sig.inputs().stream().map(TensorSpec::key).toList());
    }
    TensorSpec in = sig.inputs().get(0);
    List<Long> shape = in.shape();
    int frames = 0;
    if (shape.size() == 5 && shape.get(1) > 1 && shape.get(4) == 3) {
      frames = (int) (long) shape.get(1);
      shape = shape.subList(1, 5);
    }
    if (!in.dtype().equals("float32") || shape.size() != 4 || shape.get(3) != 3) {
      throw new UsageException("input '" + in.key() + "' is " + in.dtype() + " " + in.shape()
          + ", not a batch of RGB images [batch, height, width, 3] (or of clips [batch, frames, height, width, 3])");
    }
    int h = (int) (long) shape.get(1);
    int w = (int) (long) shape.get(2);
    if (size.isPresent()) {
      if ((h > 0 && h != size.get()[0]) || (w > 0 && w != size.get()[1])) {
        throw new UsageException("--image-size " + size.get()[0] + "x" + size.get()[1] + " does not fit the model's"
            + " input " + h + "x" + w);
      }
      h = size.get()[0];
      w = size.get()[1];
    }
    if (h <= 0 || w <= 0) {
      throw new UsageException("the model takes images of any size; give one with --image-size HxW");
    }
    List<String> layers = model.info().layers().stream().map(LayerInfo::name).toList();
    if (layers.contains("block1_conv1") && layers.contains("block5_conv3")) {
      return new ImageModels(in.key(), h, w, "VGG16", ImageOps.Preprocess.CAFFE, Optional.of("block5_pool"),
          List.of("block5", "block4", "block3", "block2", "block1"), frames);
    }
    var flat = model.flatSignature(sig.name()).graphDef();
    if (!LayerScopes.nodesOf(flat, "mixed10").isEmpty()) {
      return new ImageModels(in.key(), h, w, "InceptionV3", ImageOps.Preprocess.TF, Optional.of("mixed10"),
          List.of("mixed9", "mixed8", "mixed7", "mixed6", "mixed5", "mixed4", "mixed3", "mixed2", "mixed1", "mixed0"),
          frames);
    }
    return new ImageModels(in.key(), h, w, "unknown", ImageOps.Preprocess.NONE, Optional.empty(), List.of(), frames);
  }

  /** The classes the signature's first output scores ({@code [batch, classes]}), when its shape says. */
  static java.util.OptionalInt outputClasses(KerasSavedModel model) {
    List<TensorSpec> outputs = model.info().selectedSignature().outputs();
    if (outputs.isEmpty() || !outputs.get(0).rankKnown() || outputs.get(0).shape().size() != 2
        || outputs.get(0).shape().get(1) <= 0) {
      return java.util.OptionalInt.empty();
    }
    return java.util.OptionalInt.of((int) (long) outputs.get(0).shape().get(1));
  }

  /** The preprocessing an export of ours records (assets/finetune.json, "extra"."preprocess"), if any. */
  static Optional<ImageOps.Preprocess> recordedPreprocess(java.nio.file.Path modelDir) {
    java.nio.file.Path provenance = modelDir.resolve("assets").resolve(org.finetune.export.Exporter.PROVENANCE);
    try {
      com.google.gson.JsonObject p = com.google.gson.JsonParser.parseString(java.nio.file.Files.readString(provenance))
          .getAsJsonObject();
      return Optional.of(ImageOps.Preprocess.byName(p.getAsJsonObject("extra").get("preprocess").getAsString()));
    } catch (Exception e) {
      return Optional.empty();
    }
  }

  static Optional<int[]> parseSize(String text) {
    if (text == null) {
      return Optional.empty();
    }
    String[] p = text.toLowerCase(java.util.Locale.ROOT).split("x");
    try {
      if (p.length == 2) {
        int h = Integer.parseInt(p[0].trim());
        int w = Integer.parseInt(p[1].trim());
        if (h > 0 && w > 0) {
          return Optional.of(new int[] {h, w});
        }
      }
    } catch (NumberFormatException e) {
      // falls through
    }
    throw new UsageException("--image-size takes HEIGHTxWIDTH, e.g. 224x224; got '" + text + "'");
  }
}
