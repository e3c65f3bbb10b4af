package org.finetune.graph;

import org.tensorflow.proto.DataType;
import org.tensorflow.types.TBfloat16;
import org.tensorflow.types.TBool;
import org.tensorflow.types.TFloat16;
import org.tensorflow.types.TFloat32;
import org.tensorflow.types.TFloat64;
import org.tensorflow.types.TInt32;
import org.tensorflow.types.TInt64;
import org.tensorflow.types.TString;
import org.tensorflow.types.TUint16;
import org.tensorflow.types.TUint8;
import org.tensorflow.types.family.TType;

/**
 * The TF Java tensor class of a graph's data type: every type TF Java has a class for (the
 * runtime's own registry of them is not exported to modules).
 */
public final class TensorTypes {
  private TensorTypes() {}

  /**
   * @throws IllegalArgumentException for a type TF Java has no tensor class for (int8, complex, ...)
   */
  public static Class<? extends TType> of(DataType dtype) {
    return switch (dtype) {
      case DT_FLOAT -> TFloat32.class;
      case DT_DOUBLE -> TFloat64.class;
      case DT_HALF -> TFloat16.class;
      case DT_BFLOAT16 -> TBfloat16.class;
      case DT_INT32 -> TInt32.class;
      case DT_INT64 -> TInt64.class;
      case DT_BOOL -> TBool.class;
      case DT_STRING -> TString.class;
      case DT_UINT8 -> TUint8.class;
      case DT_UINT16 -> TUint16.class;
      default -> throw new IllegalArgumentException("TF Java has no tensor type for " + dtype);
    };
  }
}
