"""Tiny copies of the public datasets in their true formats, for the adapter tests.

``write_mimic_fixture(root)`` writes MIMIC-IV-ECG (WFDB, MIMIC's header: aVF before aVL,
500 Hz, 5000 samples, gain 200), MIMIC-CXR-JPG (+ reports), MIMIC-IV-ECHO (hand-written
multi-frame DICOM and a single-frame still) and hosp ``patients.csv.gz``.
``write_echonet_fixture`` writes MJPG AVIs, ``write_ptbxl_fixture`` 1000 units/mV WFDB.
The comments say which row tests which rule; the tests assert the exact outcome.
"""

from __future__ import annotations

import gzip
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

MIMIC_LEADS = ["I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6"]
PTBXL_LEADS = ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]

A, B, C = "10000032", "10000764", "10002221"  # C is missing from hosp and the CXR split


def write_csv(path: Path, columns: Sequence[str], rows: Sequence[Mapping]) -> Path:
    """A CSV with exactly ``columns`` (missing cells blank); ``.gz`` paths are gzipped."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = pd.DataFrame(list(rows), columns=list(columns)).to_csv(index=False)
    if path.suffix == ".gz":
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


def write_wfdb(record: Path, leads: list[str], gain: float, seed: int = 0) -> Path:
    """A 10 s, 500 Hz, 12-lead WFDB record (``record``.hea/.dat); lead k is k+1 mV sines."""
    import wfdb

    record.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(5000) / 500
    rng = np.random.default_rng(seed)
    sig = np.stack([(k + 1) * 0.1 * np.sin(2 * np.pi * t) + 0.01 * rng.standard_normal(5000)
                    for k in range(12)], axis=1)
    wfdb.wrsamp(record.name, fs=500, units=["mV"] * 12, sig_name=leads, p_signal=sig,
                fmt=["16"] * 12, adc_gain=[gain] * 12, baseline=[0] * 12,
                write_dir=str(record.parent))
    return record.with_name(record.name + ".hea")


def write_dicom(path: Path, frames: int, size: int = 16) -> Path:
    """An RGB ultrasound DICOM; ``frames`` > 1 writes a cine (NumberOfFrames, FrameTime)."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    cine = frames > 1
    sop_class = "1.2.840.10008.5.1.4.1.1.3.1" if cine else "1.2.840.10008.5.1.4.1.1.6.1"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.Modality = "US"
    ds.Rows = ds.Columns = size
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    pixels = np.zeros((frames, size, size, 3), np.uint8)
    pixels[:, 4:12, 4:12] = (np.arange(frames, dtype=np.uint8) * 20 + 60)[:, None, None, None]
    if cine:
        ds.NumberOfFrames, ds.FrameTime = frames, 33.3
    ds.PixelData = pixels.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_jpg(path: Path, size: int = 32) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.tile(np.arange(size, dtype=np.uint8) * 8, (size, 1))
    Image.fromarray(img, mode="L").save(path, format="JPEG")
    return path


def write_avi(path: Path, frames: int = 8, size: int = 32) -> Path:
    """An MJPG AVI (EchoNet's container and codec) of a moving bright square."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w", format="avi") as container:
        stream = container.add_stream("mjpeg", rate=50)
        stream.width = stream.height = size
        stream.pix_fmt = "yuvj420p"
        for k in range(frames):
            rgb = np.zeros((size, size, 3), np.uint8)
            rgb[8 + k % 4:16 + k % 4, 8:16] = 200
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


# --------------------------------------------------------------------------- MIMIC
ECG_RECORDS = (  # (subject, study, ecg_time, write files?, report statements)
    (A, "40689238", "2180-07-23 08:44:00", True, ["Sinus rhythm", "Right bundle branch block"]),
    (A, "40689239", "2180-07-24 09:00:00", True,
     ["Sinus rhythm", "Incomplete right bundle branch block"]),
    (B, "41000001", "2181-01-10 10:00:00", False, ["Atrial-paced rhythm"]),  # missing file
    (C, "42000001", "2182-01-01 12:00:00", True, ["Sinus rhythm", "Left bundle branch block"]),
    (C, "42000002", "not a time", True, ["Sinus rhythm"]),  # unparseable time
    ("", "43000001", "2182-01-01 12:00:00", False, ["Sinus rhythm"]),  # no subject_id
)
MM_COLUMNS = (["subject_id", "study_id", "cart_id", "ecg_time"]
              + [f"report_{i}" for i in range(18)]
              + ["rr_interval", "p_onset", "p_end", "qrs_onset", "qrs_end", "t_end", "p_axis",
                 "qrs_axis", "t_axis"])
CXR_IMAGES = (  # (dicom_id, subject, study, view, StudyDate, StudyTime, write file?)
    ("02aa804e-bde0afdd-112c0b34-7bc16630-4e384014", A, "50414267", "PA", "21800506",
     "4512.5", True),  # StudyTime lost its leading zeros: 00:45:12.5
    ("174413ec-4ec4c1f7-34ea26b7-c5f994f8-79ef1962", A, "50414267", "LATERAL", "21800506",
     "4530.0", True),  # non-frontal
    ("2a2277a9-b0ded155-c0de8eb9-c124d10e-82c5caab", B, "57375967", "AP", "21810112",
     "143000.0", True),
)
CXR_REPORTS = {
    (A, "50414267"): ("                                 FINAL REPORT\n EXAMINATION:  CHEST (PA AND"
                      " LAT)\n\n INDICATION:  Cough.\n\n FINDINGS:\n \n There is a focal "
                      "consolidation at the\n left lung base.\n\n IMPRESSION:\n \n Left lower "
                      "lobe pneumonia.\n"),
    (B, "57375967"): ("   WET READ: no acute process\n\n Portable chest radiograph.\n\n"
                      " Lungs are clear without edema.\n"),
}
CHEXPERT_ROWS = (
    {"subject_id": A, "study_id": "50414267", "Consolidation": "1.0", "Edema": "-1.0",
     "Pneumonia": "1.0"},  # edema uncertain
    {"subject_id": B, "study_id": "57375967", "Edema": "0.0", "No Finding": "1.0"},
)  # B's consolidation blank = unmentioned
CXR_OFFICIAL = {A: "test", B: "validate"}
CHEXPERT_COLUMNS = ["subject_id", "study_id", "Atelectasis", "Cardiomegaly", "Consolidation",
                    "Edema", "Enlarged Cardiomediastinum", "Fracture", "Lung Lesion",
                    "Lung Opacity", "No Finding", "Pleural Effusion", "Pleural Other",
                    "Pneumonia", "Pneumothorax", "Support Devices"]
METADATA_COLUMNS = ["dicom_id", "subject_id", "study_id", "PerformedProcedureStepDescription",
                    "ViewPosition", "Rows", "Columns", "StudyDate", "StudyTime",
                    "ProcedureCodeSequence_CodeMeaning", "ViewCodeSequence_CodeMeaning",
                    "PatientOrientationCodeSequence_CodeMeaning"]
ECHO_RECORDS = (  # (subject, study, acquisition_datetime, n, frames; 0 = no file)
    (A, "94106955", "2180-07-25 10:00:00", 1, 4),
    (A, "94106955", "2180-07-25 10:01:00", 2, 1),  # single-frame still
    (C, "95000001", "2182-03-01 08:00:00", 1, 5),
    (C, "95000001", "2182-03-01 08:05:00", 2, 0),  # missing file
)
ECHO_STUDIES = (  # (subject, study, study_datetime, measurement_id, measurement_datetime)
    (A, "94106955", "2180-07-25 09:55:00", "1001", "2180-07-25 11:00:00"),
    (C, "95000001", "2182-03-01 07:50:00", "1002", "2182-03-01 09:00:00"),
)
ECHO_MEASUREMENTS = (  # subject_id, measurement_id, measurement_datetime, measurement, result, unit
    (A, "1001", "2180-07-25 11:00:00", "lvef", "55-60", "%"),
    (A, "1001", "2180-07-25 11:00:00", "lvidd", "4.5", "cm"),
    (C, "1002", "2182-03-01 09:00:00", "lvef", "60%", "%"),
    (C, "1003", "2185-06-01 09:00:00", "lvef", "normal", ""),  # unparseable
    (C, "1004", "2185-06-01 10:00:00", "lvef", "35", "%"),  # 3 years from any video
)
HOSP = ((A, "F", "52", "2180"), (B, "M", "76", "2181"),
        ("19999999", "M", "40", "2150"))  # the last has no samples; C is missing


def extra_mimic_patients(n: int) -> dict[str, list]:
    """``n`` more patients with every module on one day and varied labels (end-to-end runs)."""
    out: dict[str, list] = {k: [] for k in ("ecg", "cxr", "reports", "chexpert", "echo",
                                            "studies", "measurements", "hosp")}
    findings = [["Sinus rhythm", "Right bundle branch block"], ["Sinus rhythm", "LBBB"],
                ["Ventricular pacing"], ["Sinus rhythm", "Normal ECG"]]
    for k in range(n):
        pid, day = str(11_000_000 + k), f"2180-{1 + k % 12:02d}-{1 + k % 28:02d}"
        out["ecg"].append((pid, str(48_000_000 + k), f"{day} 08:00:00", True, findings[k % 4]))
        study, dicom = str(58_000_000 + k), f"extra-{k:05d}"
        out["cxr"].append((dicom, pid, study, "PA", day.replace("-", ""), "90000", True))
        sick = k % 2 == 0
        out["reports"].append(((pid, study), "FINDINGS: " + (
            "Consolidation and pulmonary edema." if sick else "Lungs are clear.")))
        out["chexpert"].append({"subject_id": pid, "study_id": study,
                                "Consolidation": "1.0" if sick else "0.0",
                                "Edema": "0.0" if k % 3 else "1.0"})
        echo, mid = str(96_000_000 + k), str(2000 + k)
        out["echo"].append((pid, echo, f"{day} 10:00:00", 1, 4))
        out["studies"].append((pid, echo, f"{day} 09:50:00", mid, f"{day} 11:00:00"))
        out["measurements"].append((pid, mid, f"{day} 11:00:00", "lvef", str(20 + 5 * (k % 12)),
                                    "%"))
        out["hosp"].append((pid, "FM"[k % 2], str(40 + k % 40), "2180"))
    return out


def write_mimic_ecg(root: Path, records: Sequence = ECG_RECORDS) -> Path:
    rows, measurements = [], []
    for subject, study, time, files, report in records:
        rel = f"files/p{subject[:4]}/p{subject}/s{study}/{study}"
        if files:
            write_wfdb(root / rel, MIMIC_LEADS, gain=200.0, seed=int(study) % 97)
        rows.append({"subject_id": subject, "study_id": study, "file_name": study,
                     "ecg_time": time, "path": rel})
        row = {"subject_id": subject, "study_id": study, "cart_id": "6848296",
               "ecg_time": time, "rr_interval": "659", "p_axis": "29999"}
        row.update({f"report_{i}": s for i, s in enumerate(report)})
        measurements.append(row)
    write_csv(root / "record_list.csv",
              ["subject_id", "study_id", "file_name", "ecg_time", "path"], rows)
    write_csv(root / "machine_measurements.csv", MM_COLUMNS, measurements)
    return root


def write_mimic_cxr(root: Path, images: Sequence = CXR_IMAGES, reports: Mapping = CXR_REPORTS,
                    chexpert: Sequence = CHEXPERT_ROWS) -> Path:
    meta, split = [], []
    for dicom, subject, study, view, date, time, files in images:
        folder = root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}"
        if files:
            write_jpg(folder / f"{dicom}.jpg")
        meta.append({"dicom_id": dicom, "subject_id": subject, "study_id": study,
                     "PerformedProcedureStepDescription": "CHEST (PA AND LAT)",
                     "ViewPosition": view, "Rows": "32", "Columns": "32", "StudyDate": date,
                     "StudyTime": time})
        if subject in CXR_OFFICIAL:
            split.append({"dicom_id": dicom, "study_id": study, "subject_id": subject,
                          "split": CXR_OFFICIAL[subject]})
    for (subject, study), text in reports.items():
        (root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}.txt").write_text(text)
    write_csv(root / "mimic-cxr-2.0.0-metadata.csv", METADATA_COLUMNS, meta)
    write_csv(root / "mimic-cxr-2.0.0-split.csv", ["dicom_id", "study_id", "subject_id", "split"],
              split)
    write_csv(root / "mimic-cxr-2.0.0-chexpert.csv", CHEXPERT_COLUMNS, chexpert)
    return root


def write_mimic_echo(root: Path, records: Sequence = ECHO_RECORDS, studies: Sequence = ECHO_STUDIES,
                     measurements: Sequence = ECHO_MEASUREMENTS) -> Path:
    rows = []
    for subject, study, time, n, frames in records:
        rel = f"files/p{subject[:2]}/p{subject}/s{study}/{study}_{n:04d}.dcm"
        if frames:
            write_dicom(root / rel, frames=frames)
        rows.append({"subject_id": subject, "study_id": study, "acquisition_datetime": time,
                     "dicom_filepath": rel})
    write_csv(root / "echo-record-list.csv",
              ["subject_id", "study_id", "acquisition_datetime", "dicom_filepath"], rows)
    study_cols = ["subject_id", "study_id", "study_datetime", "measurement_id",
                  "measurement_datetime"]
    write_csv(root / "echo-study-list.csv",
              ["subject_id", "study_id", "study_datetime", "note_id", "note_seq",
               "note_charttime", "measurement_id", "measurement_datetime"],
              [dict(zip(study_cols, r, strict=True)) for r in studies])
    cols = ["subject_id", "measurement_id", "measurement_datetime", "measurement", "result",
            "unit"]
    write_csv(root / "structured-measurement.csv.gz", cols,
              [dict(zip(cols, r, strict=True)) for r in measurements])
    return root


def write_mimic_hosp(root: Path, rows: Sequence = HOSP) -> Path:
    write_csv(root / "patients.csv.gz",
              ["subject_id", "gender", "anchor_age", "anchor_year", "anchor_year_group", "dod"],
              [{"subject_id": p, "gender": g, "anchor_age": age, "anchor_year": year,
                "anchor_year_group": "2014 - 2016"} for p, g, age, year in rows])
    return root


def write_mimic_fixture(root: str | Path, extra_patients: int = 0) -> dict[str, Path]:
    """Write the four MIMIC modules under ``root``; returns module -> root directory.

    ``extra_patients`` adds that many complete patients (every module on one day, labels
    varied) for end-to-end runs; the tests of the adapter use the default 0.
    """
    root, x = Path(root), extra_mimic_patients(extra_patients)
    return {
        "ecg": write_mimic_ecg(root / "mimic-iv-ecg", (*ECG_RECORDS, *x["ecg"])),
        "cxr": write_mimic_cxr(root / "mimic-cxr-jpg", (*CXR_IMAGES, *x["cxr"]),
                               {**CXR_REPORTS, **dict(x["reports"])},
                               (*CHEXPERT_ROWS, *x["chexpert"])),
        "echo": write_mimic_echo(root / "mimic-iv-echo", (*ECHO_RECORDS, *x["echo"]),
                                 (*ECHO_STUDIES, *x["studies"]),
                                 (*ECHO_MEASUREMENTS, *x["measurements"])),
        "hosp": write_mimic_hosp(root / "mimic-iv" / "hosp", (*HOSP, *x["hosp"])),
    }


# --------------------------------------------------------------------------- EchoNet
ECHONET_COLUMNS = ["FileName", "EF", "ESV", "EDV", "FrameHeight", "FrameWidth", "FPS",
                   "NumberOfFrames", "Split"]


def write_echonet_fixture(root: str | Path) -> Path:
    """FileList.csv + Videos/: 0X1A train, 0X1B val, 0X1C missing video, 0X1D EF blank."""
    root = Path(root)
    rows = [("0X1A", "55.3", "TRAIN", True), ("0X1B", "30.1", "VAL", True),
            ("0X1C", "60.0", "TEST", False), ("0X1D", "", "TEST", True)]
    for name, _, _, video in rows:
        if video:
            write_avi(root / "Videos" / f"{name}.avi")
    write_csv(root / "FileList.csv", ECHONET_COLUMNS, [
        {"FileName": n, "EF": ef, "ESV": "20.0", "EDV": "50.0", "FrameHeight": "112",
         "FrameWidth": "112", "FPS": "50", "NumberOfFrames": "8", "Split": s}
        for n, ef, s, _ in rows])
    return root


# --------------------------------------------------------------------------- PTB-XL
PTBXL_COLUMNS = ["ecg_id", "patient_id", "age", "sex", "height", "weight", "nurse", "site",
                 "device", "recording_date", "report", "scp_codes", "heart_axis",
                 "infarction_stadium1", "infarction_stadium2", "validated_by", "second_opinion",
                 "initial_autogenerated_report", "validated_by_human", "baseline_drift",
                 "static_noise", "burst_noise", "electrodes_problems", "extra_beats",
                 "pacemaker", "strat_fold", "filename_lr", "filename_hr"]
PTBXL_ROWS = [  # (ecg_id, patient_id, age, sex, date, report, scp_codes, fold, write file?)
    ("1", "15709.0", "56.0", "1", "1984-11-09 09:17:34", "sinusrhythmus periphere niederspannung",
     "{'NORM': 100.0, 'LVOLT': 0.0, 'SR': 0.0}", "3", True),
    ("2", "13243.0", "300.0", "0", "1984-11-14 12:55:37",
     "sinus rhythm. complete right bundle branch block", "{'CRBBB': 100.0, 'SR': 0.0}", "9",
     True),  # age 300 = over 89
    ("3", "20372.0", "37.0", "0", "1984-11-15 12:49:10", "schrittmacher-ekg",
     "{'PACE': 0.0}", "10", True),  # PACE with likelihood 0 (unknown) is positive
    ("4", "15709.0", "57.0", "1", "1985-11-09 10:00:00", "linksschenkelblock",
     "{'CLBBB': 100.0}", "3", False),  # missing file
    ("5", "17014.0", "70.0", "1", "1986-01-01 08:00:00", "", "{'NORM': 100.0", "1",
     True),  # empty report, unparseable scp_codes
    ("6", "17015.0", "71.0", "0", "not a date", "sinusrhythmus", "{'SR': 0.0}", "2", True),
]


def write_ptbxl_fixture(root: str | Path) -> Path:
    """ptbxl_database.csv + records500/ (1000 units/mV, upper-case lead names)."""
    root = Path(root)
    rows = []
    for ecg, pid, age, sex, date, report, scp, fold, files in PTBXL_ROWS:
        hr = f"records500/00000/{int(ecg):05d}_hr"
        if files:
            write_wfdb(root / hr, PTBXL_LEADS, gain=1000.0, seed=int(ecg))
        rows.append({"ecg_id": ecg, "patient_id": pid, "age": age, "sex": sex,
                     "recording_date": date, "report": report, "scp_codes": scp,
                     "strat_fold": fold, "filename_lr": f"records100/00000/{int(ecg):05d}_lr",
                     "filename_hr": hr, "validated_by_human": "True"})
    write_csv(root / "ptbxl_database.csv", PTBXL_COLUMNS, rows)
    return root
