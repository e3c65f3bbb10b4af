package org.finetune.job;

import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.function.Supplier;
import org.finetune.data.ImageOps;
import org.finetune.graph.LayerScopes;
import org.finetune.model.FlatSignature;
import org.finetune.model.KerasSavedModel;
import org.finetune.savedmodel.LayerInfo;
import org.finetune.savedmodel.ModelInfo;
import org.finetune.savedmodel.TensorSpec;

/**
 * The conventions of a known model architecture, recognised from the model's own layers: how its
 * images are preprocessed, the layer whose output a new head takes, and its layer groups for
 * gradual unfreezing, top (output side) first. A model of no known family is {@link #GENERIC}:
 * it has none of these, and a job states or asks for each instead of guessing.
 *
 * @param name the family's name (VGG16, ResNet, EfficientNet, ..., GPT-2, or generic)
 * @param preprocess Keras's {@code preprocess_input} mode for its images (empty: not an image family)
 * @param featureLayer the layer whose output feeds a new head (empty: none known)
 * @param groups layer-group selectors for gradual unfreezing, top first (empty: none known)
 */
public record ModelFamily(String name, Optional<ImageOps.Preprocess> preprocess, Optional<String> featureLayer,
    List<String> groups) {
  /** Keras's VGG16: caffe preprocessing, features at {@code block5_pool}, blocks 5 to 1. */
  public static final ModelFamily VGG16 = new ModelFamily("VGG16", Optional.of(ImageOps.Preprocess.CAFFE),
      Optional.of("block5_pool"), List.of("block5", "block4", "block3", "block2", "block1"));
  /** Keras's InceptionV3: tf preprocessing, features at {@code mixed10}, the mixed blocks from the top. */
  public static final ModelFamily INCEPTION_V3 = new ModelFamily("InceptionV3", Optional.of(ImageOps.Preprocess.TF),
      Optional.of("mixed10"), List.of("mixed9", "mixed8", "mixed7", "mixed6", "mixed5", "mixed4", "mixed3", "mixed2",
          "mixed1", "mixed0"));
  /** A model of no known family. */
  public static final ModelFamily GENERIC = new ModelFamily("generic", Optional.empty(), Optional.empty(), List.of());

  public ModelFamily {
    Objects.requireNonNull(name, "name");
    Objects.requireNonNull(preprocess, "preprocess");
    Objects.requireNonNull(featureLayer, "featureLayer");
    groups = List.copyOf(groups);
  }

  /** Whether the family is known (not {@link #GENERIC}). */
  public boolean known() {
    return !this.equals(GENERIC);
  }

  /**
   * The family of {@code model}'s selected signature: a {@code keras.applications} family by the
   * names Keras gives its layers (see {@link ApplicationFamilies}); VGG16 by its
   * {@code block1_conv1} .. {@code block5_conv3} layers; a GPT-2 causal language model (keras-hub's {@code GPT2CausalLM}:
   * inputs {@code token_ids} and {@code padding_mask}, {@code transformer_layer_N} layers), whose
   * groups are the last transformer layer with the final layer norm, each layer below, then the
   * embeddings; InceptionV3 by its {@code mixed10} block in the flattened graph; else generic.
   */
  public static ModelFamily detect(KerasSavedModel model) {
    return detect(model.info(), () -> model.flatSignature(model.info().signature()));
  }

  /**
   * The family of a model that need not be loaded: {@code info} as read from its directory, and
   * its selected signature flattened, asked for (at most once) only where layer names do not
   * decide (InceptionV3's blocks, the feature layer of MobileNetV3, NASNet and RegNet).
   */
  public static ModelFamily detect(ModelInfo info, Supplier<FlatSignature> flat) {
    Supplier<FlatSignature> once = new Supplier<>() {
      private FlatSignature value;

      @Override
      public FlatSignature get() {
        if (value == null) {
          value = flat.get();
        }
        return value;
      }
    };
    List<String> layers = info.layers().stream().map(LayerInfo::name).toList();
    Optional<ModelFamily> application = ApplicationFamilies.detect(info, once, layers);
    if (application.isPresent()) {
      return application.get();
    }
    if (layers.contains("block1_conv1") && layers.contains("block5_conv3")) {
      return VGG16;
    }
    Set<String> inputs = Set.copyOf(info.selectedSignature().inputs().stream().map(TensorSpec::key).toList());
    if (inputs.equals(Set.of("token_ids", "padding_mask")) && layers.contains("transformer_layer_0")) {
      return gpt2(layers);
    }
    if (info.selectedSignature().inputs().size() == 1
        && !LayerScopes.nodesOf(once.get().graphDef(), "mixed10").isEmpty()) {
      return INCEPTION_V3;
    }
    return GENERIC;
  }

  private static ModelFamily gpt2(List<String> layers) {
    int n = transformerLayers(layers);
    List<String> groups = new ArrayList<>();
    String top = "transformer_layer_" + (n - 1);
    groups.add(layers.contains("layer_norm") ? "layers:layer_norm," + top : "layers:" + top);
    for (int i = n - 2; i >= 0; i--) {
      groups.add("layers:transformer_layer_" + i);
    }
    List<String> embeddings = layers.stream().filter(l -> l.endsWith("_embedding")).toList();
    if (!embeddings.isEmpty()) {
      groups.add("layers:" + String.join(",", embeddings));
    }
    return new ModelFamily("GPT-2", Optional.empty(), Optional.empty(), groups);
  }

  /** The count of {@code transformer_layer_0, 1, ...} layers. */
  static int transformerLayers(List<String> layers) {
    int n = 0;
    while (layers.contains("transformer_layer_" + n)) {
      n++;
    }
    return n;
  }
}
