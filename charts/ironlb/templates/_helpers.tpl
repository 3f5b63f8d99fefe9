{{/*
Object names. "ironlb" by default, so that a release named ironlb gets the
same names as manifests/; a release with another name gets <release>-ironlb.
Cluster-scoped objects (ClusterRoles, bindings) share these names, so two
releases never collide; but one cluster runs one ironlb: two service
controllers would fight over every LoadBalancer Service.
*/}}
{{- define "ironlb.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "ironlb.ccm.name" -}}{{ include "ironlb.fullname" . }}-ccm{{- end -}}
{{- define "ironlb.speaker.name" -}}{{ include "ironlb.fullname" . }}-speaker{{- end -}}

{{/*
Names ironlb's binaries look for by default. The RBAC pins them
(resourceNames), so they are fixed here rather than values: changing one
means passing the matching flag, which the templates would then have to do.
*/}}
{{- define "ironlb.configMapName" -}}ironlb-config{{- end -}}
{{- define "ironlb.leaseName" -}}ironlb-cloud-controller-manager{{- end -}}
{{- define "ironlb.defaultNamespace" -}}ironlb-system{{- end -}}

{{/* Labels on every object. */}}
{{- define "ironlb.labels" -}}
app.kubernetes.io/name: ironlb
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: ironlb
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Selector labels of one component; call with (dict "ctx" $ "component" "ccm"). */}}
{{- define "ironlb.selectorLabels" -}}
app.kubernetes.io/name: ironlb
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* All labels of one component; call with (dict "ctx" $ "component" "ccm"). */}}
{{- define "ironlb.componentLabels" -}}
{{ include "ironlb.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* image reference; call with (dict "ctx" $ "image" .Values.ccm.image). */}}
{{- define "ironlb.image" -}}
{{- $tag := .image.tag | default (printf "v%s" .ctx.Chart.AppVersion) -}}
{{- printf "%s:%s" .image.repository $tag -}}
{{- end -}}
