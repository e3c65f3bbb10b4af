package org.finetune.graph;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.tensorflow.Graph;
import org.tensorflow.Session;
import org.tensorflow.Tensor;
import org.tensorflow.ndarray.Shape;
import org.tensorflow.ndarray.StdArrays;
import org.tensorflow.proto.AttrValue;
import org.tensorflow.proto.DataType;
import org.tensorflow.proto.GraphDef;
import org.tensorflow.proto.NodeDef;
import org.tensorflow.proto.TensorShapeProto;
import org.tensorflow.types.TFloat32;

/**
 * A grouped {@code Conv2D}, which the runtime's CPU kernel refuses, rewritten as a depthwise
 * convolution and sums, equals grouped convolution computed by definition in double precision:
 * output channel {@code o} of group {@code o / m} sums the {@code k} input channels of that group.
 */
class GroupedConvolutionsTest {
  @ParameterizedTest
  @CsvSource({"4, 2, 6, SAME, 1", "6, 1, 12, VALID, 1", "6, 3, 4, SAME, 2", "8, 2, 8, VALID, 2"})
  void rewriteEqualsGroupedConvolutionByDefinition(int c, int k, int o, String padding, int stride) {
    int n = 2;
    int h = 7;
    int w = 6;
    int kh = 3;
    int kw = 3;
    Random random = new Random(c * 31L + k);
    float[][][][] x = new float[n][h][w][c];
    float[][][][] f = new float[kh][kw][k][o];
    fill(x, random);
    fill(f, random);
    GraphDef graph = GraphDef.newBuilder()
        .addNode(NodeDef.newBuilder().setName("x").setOp("Placeholder")
            .putAttr("dtype", AttrValue.newBuilder().setType(DataType.DT_FLOAT).build())
            .putAttr("shape", AttrValue.newBuilder().setShape(shape(n, h, w, c)).build()))
        .addNode(NodeDef.newBuilder().setName("f").setOp("Placeholder")
            .putAttr("dtype", AttrValue.newBuilder().setType(DataType.DT_FLOAT).build())
            .putAttr("shape", AttrValue.newBuilder().setShape(shape(kh, kw, k, o)).build()))
        .addNode(NodeDef.newBuilder().setName("layer/conv").setOp("Conv2D").addInput("x").addInput("f")
            .putAttr("T", AttrValue.newBuilder().setType(DataType.DT_FLOAT).build())
            .putAttr("strides", AttrValue.newBuilder().setList(AttrValue.ListValue.newBuilder()
                .addI(1).addI(stride).addI(stride).addI(1)).build())
            .putAttr("padding", AttrValue.newBuilder().setS(com.google.protobuf.ByteString.copyFromUtf8(padding)).build()))
        .build();
    GraphDef rewritten = GroupedConvolutions.rewrite(graph);
    assertTrue(rewritten.getNodeList().stream().noneMatch(nd -> nd.getOp().equals("Conv2D")), "rewritten");
    float[][][][] y;
    try (Graph g = new Graph(); Session s = new Session(g);
        TFloat32 xt = TFloat32.tensorOf(StdArrays.ndCopyOf(x)); TFloat32 ft = TFloat32.tensorOf(StdArrays.ndCopyOf(f))) {
      g.importGraphDef(rewritten);
      try (Tensor out = s.runner().feed("x", xt).feed("f", ft).fetch("layer/conv").run().get(0)) {
        Shape shape = out.shape();
        y = StdArrays.array4dCopyOf((TFloat32) out);
        assertEquals(o, shape.get(3));
      }
    }
    int groups = c / k;
    int m = o / groups;
    int outH = y[0].length;
    int outW = y[0][0].length;
    int padTop = padding.equals("SAME") ? Math.max((outH - 1) * stride + kh - h, 0) / 2 : 0;
    int padLeft = padding.equals("SAME") ? Math.max((outW - 1) * stride + kw - w, 0) / 2 : 0;
    double worst = 0;
    for (int b = 0; b < n; b++) {
      for (int i = 0; i < outH; i++) {
        for (int j = 0; j < outW; j++) {
          for (int oc = 0; oc < o; oc++) {
            int group = oc / m;
            double sum = 0;
            for (int di = 0; di < kh; di++) {
              for (int dj = 0; dj < kw; dj++) {
                int yi = i * stride + di - padTop;
                int xj = j * stride + dj - padLeft;
                if (yi < 0 || yi >= h || xj < 0 || xj >= w) {
                  continue;
                }
                for (int ic = 0; ic < k; ic++) {
                  sum += (double) x[b][yi][xj][group * k + ic] * f[di][dj][ic][oc];
                }
              }
            }
            worst = Math.max(worst, Math.abs(sum - y[b][i][j][oc]));
          }
        }
      }
    }
    assertTrue(worst < 1e-5, "worst difference from the definition: " + worst);
  }

  private static TensorShapeProto shape(long... dims) {
    TensorShapeProto.Builder b = TensorShapeProto.newBuilder();
    for (long d : dims) {
      b.addDim(TensorShapeProto.Dim.newBuilder().setSize(d));
    }
    return b.build();
  }

  private static void fill(float[][][][] a, Random random) {
    for (float[][][] p : a) {
      for (float[][] q : p) {
        for (float[] r : q) {
          for (int i = 0; i < r.length; i++) {
            r[i] = (float) random.nextGaussian();
          }
        }
      }
    }
  }
}
