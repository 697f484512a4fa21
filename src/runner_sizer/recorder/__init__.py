"""The recorder: watches runner pods and keeps runner→node history in a ConfigMap."""
