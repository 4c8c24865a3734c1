#!/usr/bin/env python3
"""Read an alnrisk Structured Report with pydicom and highdicom, independently of alnrisk, and print what it says
as JSON: the tests compare it with the MQTT result of the same answer.

usage: read_sr.py REPORT.dcm

highdicom parses the content tree as a TID 1500 Measurement Report (it raises on a tree that does not follow the
template); its measurement group's NUM items are read back by concept name. pydicom reads the rest.
"""
import json
import sys

import highdicom as hd
import pydicom
from pydicom.sr.coding import Code

SCHEME = "99ALNRISK"


def main(path):
    ds = pydicom.dcmread(path)
    out = {
        "sop_class_uid": str(ds.SOPClassUID),
        "sop_instance_uid": str(ds.SOPInstanceUID),
        "study_instance_uid": str(ds.StudyInstanceUID),
        "series_instance_uid": str(ds.SeriesInstanceUID),
        "patient_id": str(ds.PatientID),
        "patient_name": str(ds.PatientName),
        "accession_number": str(ds.AccessionNumber),
        "modality": str(ds.Modality),
        "instance_number": int(ds.InstanceNumber),
        "template": str(ds.ContentTemplateSequence[0].TemplateIdentifier),
        "root_concept": str(ds.ConceptNameCodeSequence[0].CodeValue),
        "predecessors": [
            str(sop.ReferencedSOPInstanceUID)
            for study in ds.get("PredecessorDocumentsSequence", [])
            for series in study.ReferencedSeriesSequence
            for sop in series.ReferencedSOPSequence
        ],
        "evidence": {
            str(series.SeriesInstanceUID): [str(s.ReferencedSOPClassUID) for s in series.ReferencedSOPSequence]
            for study in ds.get("CurrentRequestedProcedureEvidenceSequence", [])
            for series in study.ReferencedSeriesSequence
        },
    }

    # highdicom: the document as a Comprehensive 3D SR holding a TID 1500 report
    sr = hd.sr.Comprehensive3DSR.from_dataset(ds)
    report = hd.sr.MeasurementReport.from_sequence([sr])
    groups = report.get_image_measurement_groups()
    out["highdicom_groups"] = len(groups)
    group = groups[0]
    nums = {}
    for m in group.get_measurements():
        name = m.name
        key = name.value if name.scheme_designator == SCHEME else f"{name.scheme_designator}:{name.value}"
        unit = m.unit
        nums.setdefault(key, []).append({"value": float(m.value), "unit": unit.value})
    out["measurements"] = nums
    prob = group.get_measurements(name=Code("ALNPROB", SCHEME, "Probability of ALN metastasis"))
    out["probability"] = float(prob[0].value) if prob else None

    # pydicom: the exact value (FloatingPointValue), the codes and the texts of the measurement group
    def walk(items, depth=0):
        for it in items:
            yield it
            yield from walk(it.get("ContentSequence", []), depth + 1)

    codes, texts, exact = {}, {}, {}
    for it in walk(ds.ContentSequence):
        concept = it.ConceptNameCodeSequence[0]
        name = concept.CodeValue if concept.CodingSchemeDesignator == SCHEME else (
            f"{concept.CodingSchemeDesignator}:{concept.CodeValue}")
        if it.ValueType == "CODE":
            codes.setdefault(name, []).append(str(it.ConceptCodeSequence[0].CodeValue))
        elif it.ValueType == "TEXT":
            texts.setdefault(name, []).append(str(it.TextValue))
        elif it.ValueType == "NUM":
            mv = it.MeasuredValueSequence[0]
            exact.setdefault(name, []).append(float(mv.FloatingPointValue))
        elif it.ValueType == "UIDREF":
            texts.setdefault(name, []).append(str(it.UID))
        elif it.ValueType == "COMPOSITE":
            texts.setdefault(name, []).append(str(it.ReferencedSOPSequence[0].ReferencedSOPClassUID))
    out["codes"] = codes
    out["texts"] = texts
    out["exact"] = exact
    print(json.dumps(out, indent=1, sort_keys=True))


if __name__ == "__main__":
    main(sys.argv[1])
